"""Regenerate robots/<name>/<name>_bullet.xml (the PyBullet variant) from the MuJoCo-compiled model.

    python robots/make_bullet_variant.py half_cheetah 30
    python robots/make_bullet_variant.py ant 30

PyBullet's MJCF importer ignores geom density defaults, joint damping/stiffness and armature, so the
variant writes every body's inertial (as MuJoCo computes it) and every joint's passive parameters out
explicitly, and models armature by a geared flywheel body. Run it again whenever <name>.xml changes;
tests/test_pybullet_sim.py checks that the committed variants are up to date.
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

HERE = Path(__file__).resolve().parent
name, n_gear = sys.argv[1], float(sys.argv[2])
out_path = Path(sys.argv[3]) if len(sys.argv) > 3 else HERE / name / f"{name}_bullet.xml"
src = str(HERE / name / f"{name}.xml")
m = mujoco.MjModel.from_xml_path(src)
tree = ET.parse(src); root = tree.getroot()
fmt = lambda a: " ".join(f"{x:.10g}" for x in a)
def quat_rot(q, v):
    r = np.zeros(9); mujoco.mju_quat2Mat(r, q); return r.reshape(3, 3) @ v
def walk(elem, parent_body):
    for body in list(elem.findall("body")):
        bname = body.get("name"); bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, bname)
        for old in body.findall("inertial"): body.remove(old)
        for cam in body.findall("camera"): body.remove(cam)
        for j in body.findall("joint"):
            if j.get("type") == "free": body.remove(j)
        if bname == "payload":
            for g in body.findall("geom"): body.remove(g)
        ine = ET.Element("inertial", {"pos": fmt(m.body_ipos[bid]), "quat": fmt(m.body_iquat[bid]),
                                      "mass": f"{m.body_mass[bid]:.10g}", "diaginertia": fmt(m.body_inertia[bid])})
        body.insert(0, ine)
        # rotors for armature: a geared flywheel on the parent body for every hinge with armature
        for j in body.findall("joint"):
            jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j.get("name"))
            dof = m.jnt_dofadr[jid]
            j.set("damping", f"{m.dof_damping[dof]:.10g}"); j.set("stiffness", f"{m.jnt_stiffness[jid]:.10g}")
            j.set("armature", f"{m.dof_armature[dof]:.10g}")
            arm = m.dof_armature[m.jnt_dofadr[jid]]
            if m.jnt_type[jid] != mujoco.mjtJoint.mjJNT_HINGE or arm <= 0: continue
            pos = m.body_pos[bid] + quat_rot(m.body_quat[bid], m.jnt_pos[jid])
            axis = quat_rot(m.body_quat[bid], m.jnt_axis[jid])
            jr = arm / n_gear ** 2
            rotor = ET.Element("body", {"name": f"rotor_{j.get('name')}", "pos": fmt(pos)})
            ET.SubElement(rotor, "inertial", {"pos": "0 0 0", "mass": "1e-6", "diaginertia": fmt([jr] * 3)})
            ET.SubElement(rotor, "joint", {"name": f"rotor_{j.get('name')}", "type": "hinge", "axis": fmt(axis),
                                          "pos": "0 0 0", "limited": "false", "damping": "0", "stiffness": "0", "armature": "0"})
            elem.append(rotor)
        walk(body, body)
wb = root.find("worldbody")
for l in wb.findall("light"): wb.remove(l)
walk(wb, None)
ET.indent(tree)
out = str(out_path)
root.insert(0, ET.Comment(f" PyBullet variant of {name}.xml, generated from the MuJoCo-compiled model: the same bodies, "
    "geoms, joints and limits, with every body's inertial written out (mass, centre, principal inertia as MuJoCo computes "
    "them; pybullet's importer ignores geom density defaults) and every joint's damping, stiffness and armature explicit "
    "(adaptive_mbrl applies them). Each armature is modelled by a massless flywheel body rotor_<joint> on the parent "
    f"body, geared 1:{n_gear:g} to the joint, with inertia armature / {n_gear:g}^2. The payload body has no geom. "))
tree.write(out)
print(out, "total mass", m.body_mass.sum())
