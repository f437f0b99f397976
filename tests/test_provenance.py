"""Provenance: the date, machine, versions and revision printed beside every benchmark figure."""
import json
import re
import subprocess

from adaptive_mbrl import provenance as prov


def test_provenance_names_machine_versions_and_revision():
    info = prov.provenance()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", info["date"])
    assert info["cores"] >= 1
    assert info["versions"]["torch"] != "absent" and info["versions"]["mujoco"] != "absent"
    json.dumps(info)  # plain data, storable in a run folder


def test_git_revision_matches_git_and_is_unknown_outside_a_checkout(tmp_path):
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert prov.git_revision().split("+")[0] == head
    assert prov.git_revision(tmp_path) == "unknown"


def test_missing_package_reads_absent_and_line_holds_every_field():
    assert prov.package_versions(("no_such_package_xyz",))["no_such_package_xyz"] == "absent"
    line = prov.provenance_line()
    assert "cores" in line and "torch " in line and "git " in line
