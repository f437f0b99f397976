"""Learned dynamics models: normalisers, (ensemble) MLPs predicting state differences, fitting."""
from adaptive_mbrl.models.dynamics import (DynamicsModel, EnsembleLinear, ModelConfig, call_with_params,
                                           functional_loss, functional_predict)
from adaptive_mbrl.models.fitting import FitResult, fit, make_optimizer
from adaptive_mbrl.models.normalizer import Normalizer
from adaptive_mbrl.models.particles import EnsembleParticleStep
from adaptive_mbrl.models.state import ModelStateError, load_model_state, state_mismatches

__all__ = ["DynamicsModel", "EnsembleLinear", "ModelConfig", "Normalizer", "FitResult", "fit", "make_optimizer",
           "call_with_params", "functional_predict", "functional_loss", "ModelStateError", "load_model_state",
           "state_mismatches", "EnsembleParticleStep"]
