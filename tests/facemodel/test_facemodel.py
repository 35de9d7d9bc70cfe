"""The shipped face model: loader, evaluation (numpy == torch), named controls, blinks, geometry sanity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core import InputError, SchemaError
from dvp_engine.facemodel import DEFAULT_MODEL_PATH, FaceModel, load_default_model
from dvp_engine.facemodel.model import write_npz

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return load_default_model()


def _raw() -> dict[str, np.ndarray]:
    with np.load(DEFAULT_MODEL_PATH, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write(tmp_path: Path, data: dict[str, np.ndarray], name: str = "m.npz") -> Path:
    p = tmp_path / name
    write_npz(p, data)
    return p


def _header(data: dict[str, np.ndarray]) -> dict:
    return json.loads(data["header"].tobytes().decode("utf-8"))


def _with_header(data: dict[str, np.ndarray], header: dict) -> dict[str, np.ndarray]:
    out = dict(data)
    out["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    return out


# ------------------------------------------------------------------ contract
def test_contract_shapes_and_dtypes(model: FaceModel) -> None:
    n = model.n_vertices
    assert n == 468
    assert model.mean_shape.shape == (n, 3) and model.mean_shape.dtype == np.float32
    assert model.faces.dtype == np.int32 and model.faces.shape[1] == 3
    assert model.id_basis.shape == (80, n, 3) and model.id_std.shape == (80,)
    assert model.expr_basis.shape == (64, n, 3) and model.expr_std.shape == (64,)
    assert model.blink_basis.shape == (2, n, 3)
    assert model.mean_albedo.shape == (n, 3) and model.albedo_basis.shape == (80, n, 3)
    assert model.albedo_std.shape == (80,)
    assert model.landmarks68.shape == (68,) and model.landmarks68.dtype == np.int32
    assert len(model.control_names) >= 8 and model.control_matrix.shape == (len(model.control_names), 64)
    assert np.all(model.expr_std > 0) and np.all(model.id_std > 0) and np.all(model.albedo_std > 0)
    assert model.header["schema"] == "FaceModel.1"
    prov = model.provenance
    assert prov["clips"] and all(c["frames_used"] > 0 for c in prov["clips"])
    assert len(prov["inputs_sha256"]) == 64
    sidecar = DEFAULT_MODEL_PATH.with_suffix(".json")
    assert json.loads(sidecar.read_text()) == model.header  # the shipped sidecar matches the shipped model


def test_geometry_in_model_frame_and_metres(model: FaceModel) -> None:
    v = model.mean_shape
    lm = model.landmarks68
    nose, chin, brow_mid = v[lm[30]], v[lm[8]], v[lm[27]]
    left_eye_outer, right_eye_outer = v[lm[45]], v[lm[36]]  # iBUG 45 = actor's left eye outer corner
    assert left_eye_outer[0] > 0 > right_eye_outer[0]  # actor's left at +x
    assert chin[1] > nose[1] > brow_mid[1]  # y down
    assert nose[2] < left_eye_outer[2] and nose[2] == pytest.approx(
        v[:, 2].min(), abs=0.005
    )  # nose toward -z
    ipd = np.linalg.norm(model.eyeball_left_center - model.eyeball_right_center)
    assert 0.055 < ipd < 0.07  # metres
    assert 0.12 < np.ptp(v[:, 0]) < 0.18 and 0.15 < np.ptp(v[:, 1]) < 0.22  # face width/height in metres
    # origin inside the head, behind the face (rotations about it look like head turns)
    assert abs(v[:, 0].mean()) < 1e-3 and v[:, 2].max() < 0.03 and nose[2] < -0.07
    assert model.eyeball_left_center[0] > 0 and 0.009 < model.eyeball_radius < 0.015
    assert 0.004 < model.iris_radius < 0.007


def test_faces_wind_outward_and_mesh_is_manifold(model: FaceModel) -> None:
    v, f = model.mean_shape.astype(np.float64), model.faces
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    centre = v[f].mean(axis=1)
    # outward: the front of the face (triangles in front of the eyes) faces the camera at -z
    front = centre[:, 2] < np.percentile(centre[:, 2], 30)
    assert np.mean(fn[front, 2] < 0) > 0.95
    edges: dict[tuple[int, int], int] = {}
    for t in f.tolist():
        for k in range(3):
            a, b = t[k], t[(k + 1) % 3]
            edges[(a, b)] = edges.get((a, b), 0) + 1
    assert max(edges.values()) == 1  # consistent winding: each directed edge once
    assert len(np.unique(f)) == model.n_vertices


def test_eye_loops_bound_the_eye_openings(model: FaceModel) -> None:
    v = model.mean_shape
    for loop, centre in ((model.eye_left_loop, model.eyeball_left_center),
                         (model.eye_right_loop, model.eyeball_right_center)):  # fmt: skip
        pts = v[loop]
        assert len(loop) >= 8 and len(set(loop.tolist())) == len(loop)
        assert np.sign(pts[:, 0].mean()) == np.sign(centre[0])
        assert np.linalg.norm(pts[:, :2].mean(0) - centre[:2]) < 0.006
        step = np.linalg.norm(np.roll(pts, -1, axis=0) - pts, axis=1)
        assert step.max() < 0.012  # consecutive vertices are neighbours along the lid


# ------------------------------------------------------------------ evaluation
def test_vertices_linear_and_batched(model: FaceModel) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 80)) * model.id_std
    d = rng.normal(size=(3, 64)) * model.expr_std
    b = rng.uniform(size=(3, 2))
    v = model.vertices(a, d, b)
    assert v.shape == (3, model.n_vertices, 3) and v.dtype == np.float64
    expected = (
        model.mean_shape
        + np.einsum("bk,knc->bnc", a, model.id_basis)
        + np.einsum("bk,knc->bnc", d, model.expr_basis)
        + np.einsum("bk,knc->bnc", b, model.blink_basis)
    )
    np.testing.assert_allclose(v, expected, atol=1e-9)
    # unbatched and None inputs
    v1 = model.vertices(a[1].astype(np.float32), d[1].astype(np.float32))
    assert v1.shape == (1, model.n_vertices, 3) and v1.dtype == np.float32
    np.testing.assert_allclose(model.vertices()[0], model.mean_shape)
    np.testing.assert_allclose(model.albedo()[0], model.mean_albedo)


def test_numpy_equals_torch_and_gradients_flow(model: FaceModel) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 80)) * model.id_std
    d = rng.normal(size=(2, 64)) * model.expr_std
    b = rng.uniform(size=(2, 2))
    beta = rng.normal(size=(2, 80)) * model.albedo_std
    vn = model.vertices(a, d, b)
    at = torch.tensor(a, requires_grad=True)
    vt = model.vertices(at, torch.tensor(d), torch.tensor(b))
    assert isinstance(vt, torch.Tensor) and vt.dtype == torch.float64
    np.testing.assert_allclose(vt.detach().numpy(), vn, atol=1e-6)
    np.testing.assert_allclose(model.albedo(torch.tensor(beta)).numpy(), model.albedo(beta), atol=1e-6)
    vt.sum().backward()
    assert at.grad is not None
    np.testing.assert_allclose(at.grad.numpy()[0], model.id_basis.sum(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    # float32 torch and mixed numpy/torch inputs
    v32 = model.vertices(torch.tensor(a, dtype=torch.float32), d.astype(np.float32))
    assert v32.dtype == torch.float32
    np.testing.assert_allclose(v32.numpy(), model.vertices(a, d, None), atol=1e-5)


def test_bad_coefficients_raise(model: FaceModel) -> None:
    with pytest.raises(InputError, match="shape"):
        model.vertices(np.zeros(79))
    with pytest.raises(InputError, match="batch"):
        model.vertices(np.zeros((2, 80)), np.zeros((3, 64)))
    with pytest.raises(InputError, match="NaN"):
        model.vertices(expression=np.full(64, np.nan))


# ------------------------------------------------------------------ named controls
def _region_shift(model: FaceModel, name: str, amount: float = 1.0) -> np.ndarray:
    d = model.control_to_expression({name: amount})
    return model.vertices(expression=d)[0].astype(np.float64) - model.mean_shape


def test_control_round_trip(model: FaceModel) -> None:
    vals = np.zeros(model.n_controls)
    vals[model.control_index("smile")] = 0.7
    expr = model.control_to_expression(vals)
    back = model.expression_to_controls(expr)
    assert back[model.control_index("face.smile")] == pytest.approx(0.7, rel=1e-5)
    # least-squares coordinates: the other (non-orthogonal) controls read 0, not their overlap with smile
    np.testing.assert_allclose(np.delete(back, model.control_index("face.smile")), 0.0, atol=1e-5)
    t = model.expression_to_controls(torch.tensor(expr[None], dtype=torch.float64))
    np.testing.assert_allclose(t.numpy()[0], back, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="unknown named control"):
        model.control_index("face.nope")
    assert set(model.control_directions()) == set(model.control_names)


def test_named_controls_move_their_regions(model: FaceModel) -> None:
    v = model.mean_shape.astype(np.float64)
    lm = model.landmarks68
    chin, lower_lip, upper_lip = lm[8], lm[57], lm[51]
    forehead = np.argsort(v[:, 1])[:30]  # the 30 highest vertices
    corners = [lm[48], lm[54]]
    brows = list(lm[17:27])
    mouth = list(lm[48:68])

    def up(disp: np.ndarray, idx: list[int] | np.ndarray) -> float:
        return float(-disp[idx, 1].mean())  # y down -> positive = moved up

    def width(disp: np.ndarray, a: int, b: int) -> float:
        return float(np.linalg.norm((v + disp)[a] - (v + disp)[b]) - np.linalg.norm(v[a] - v[b]))

    s = _region_shift(model, "face.jaw_open")
    assert -up(s, [chin, lower_lip]) > 0.005  # chin and lower lip drop by > 5 mm
    assert -up(s, [chin]) > 3 * np.abs(s[forehead]).max()
    assert s[lower_lip, 1] - s[upper_lip, 1] > 0.003  # the mouth opens (y down)

    s = _region_shift(model, "face.smile")
    assert up(s, corners) > 0.002 and up(s, corners) > 3 * np.abs(s[forehead, 1]).max()
    s = _region_shift(model, "face.frown")
    assert up(s, corners) < -0.002

    s = _region_shift(model, "face.mouth_wide")
    assert width(s, lm[48], lm[54]) > 0.004
    s = _region_shift(model, "face.pucker")
    assert width(s, lm[48], lm[54]) < -0.004

    s = _region_shift(model, "face.brow_raise")
    assert up(s, brows) > 0.002 and up(s, brows) > 2 * abs(up(s, mouth))
    s = _region_shift(model, "face.brow_furrow")
    assert width(s, lm[21], lm[22]) < -0.001  # inner brows come together

    s = _region_shift(model, "face.eye_squint")
    for eye in ("left", "right"):
        closed = model.eyelid_gap((v + s)[None], eye)[0]
        assert closed < model.eyelid_gap(v[None], eye)[0] - 0.0008


# ------------------------------------------------------------------ blinks
def test_blink_closes_each_eye_and_only_that_eye(model: FaceModel) -> None:
    v_open = model.vertices()
    gaps_open = {e: model.eyelid_gap(v_open, e)[0] for e in ("left", "right")}
    assert min(gaps_open.values()) > 0.003
    for i, eye in enumerate(("left", "right")):
        b = np.zeros(2)
        b[i] = 1.0
        v = model.vertices(blink=b)
        assert model.eyelid_gap(v, eye)[0] < 0.0003  # closed (< 0.3 mm)
        other = "right" if eye == "left" else "left"
        assert model.eyelid_gap(v, other)[0] == pytest.approx(gaps_open[other], abs=1e-6)
        half = model.eyelid_gap(model.vertices(blink=b * 0.5), eye)[0]
        assert half == pytest.approx(0.5 * gaps_open[eye], rel=0.1)
        moved = np.linalg.norm(v[0] - v_open[0], axis=1) > 1e-6
        assert np.all(np.sign(model.mean_shape[moved, 0]) == (1 if eye == "left" else -1))


# ------------------------------------------------------------------ file I/O
def test_save_load_round_trip_is_exact(model: FaceModel, tmp_path: Path) -> None:
    p = tmp_path / "copy.npz"
    model.save(p)
    m2 = FaceModel.load(p)
    for name, arr in model.arrays().items():
        np.testing.assert_array_equal(m2.arrays()[name], arr, err_msg=name)
    assert m2.control_names == model.control_names and m2.header == model.header
    # the writer is reproducible: saving again gives the same bytes
    p2 = tmp_path / "copy2.npz"
    m2.save(p2)
    assert p.read_bytes() == p2.read_bytes()


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    data = _raw()
    with pytest.raises(InputError, match="not found"):
        FaceModel.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="not a readable"):
        FaceModel.load(junk)

    hdr = _header(data)
    with pytest.raises(SchemaError, match="schema 'FaceTrack.1'"):
        FaceModel.load(_write(tmp_path, _with_header(data, {**hdr, "schema": "FaceTrack.1"})))
    no_header = {k: v for k, v in data.items() if k != "header"}
    with pytest.raises(SchemaError, match="header"):
        FaceModel.load(_write(tmp_path, no_header))
    missing = {k: v for k, v in data.items() if k != "expr_basis"}
    with pytest.raises(SchemaError, match="expr_basis"):
        FaceModel.load(_write(tmp_path, missing))
    bad = dict(data, id_basis=data["id_basis"][:, :100])
    with pytest.raises(SchemaError, match="inconsistent shapes: id_basis"):
        FaceModel.load(_write(tmp_path, bad))
    bad = dict(data, expr_std=data["expr_std"][:10])
    with pytest.raises(SchemaError, match="inconsistent shapes"):
        FaceModel.load(_write(tmp_path, bad))
    nan = data["mean_shape"].copy()
    nan[5, 1] = np.nan
    with pytest.raises(SchemaError, match="mean_shape contains NaN"):
        FaceModel.load(_write(tmp_path, dict(data, mean_shape=nan)))
    faces = data["faces"].copy()
    faces[0, 0] = 10_000
    with pytest.raises(SchemaError, match="faces has vertex indices outside"):
        FaceModel.load(_write(tmp_path, dict(data, faces=faces)))
    with pytest.raises(SchemaError, match="control_names"):
        FaceModel.load(_write(tmp_path, _with_header(data, {**hdr, "control_names": ["face.a"]})))
    # pickled object arrays are refused, never unpickled
    obj = tmp_path / "obj.npz"
    np.savez(obj, header=np.array([{"schema": "FaceModel.1"}], dtype=object))
    with pytest.raises(InputError, match="not a readable"):
        FaceModel.load(obj)


def test_studio_model_with_other_sizes_loads(model: FaceModel, tmp_path: Path) -> None:
    """A studio's own model (other vertex count and basis sizes) loads and evaluates."""
    rng = np.random.default_rng(3)
    n, t = 10, 4
    data = {
        "mean_shape": rng.normal(size=(n, 3)),
        "faces": np.array([[0, 1, 2], [2, 3, 4], [4, 5, 6], [7, 8, 9]]),
        "id_basis": rng.normal(size=(5, n, 3)),
        "id_std": np.ones(5),
        "expr_basis": rng.normal(size=(7, n, 3)),
        "expr_std": np.ones(7),
        "blink_basis": np.zeros((2, n, 3)),
        "mean_albedo": np.full((n, 3), 0.5),
        "albedo_basis": rng.normal(size=(3, n, 3)),
        "albedo_std": np.ones(3),
        "landmarks68": np.arange(68) % n,
        "eye_left_loop": np.array([0, 1, 2]),
        "eye_right_loop": np.array([3, 4, 5]),
        "eyeball_left_center": np.zeros(3),
        "eyeball_right_center": np.zeros(3),
        "eyeball_radius": np.array(0.012),
        "iris_radius": np.array(0.006),
        "control_matrix": rng.normal(size=(1, 7)),
        "header": np.frombuffer(
            json.dumps({"schema": "FaceModel.1", "control_names": ["face.x"]}).encode(), np.uint8
        ),
    }
    m = FaceModel.load(_write(tmp_path, data))
    assert m.faces.shape == (t, 3) and m.vertices(np.ones(5), np.ones(7)).shape == (1, n, 3)
    assert m.n_id == 5 and m.n_expr == 7 and m.n_albedo == 3


def test_mouth_weights_separate_mouth_from_brows(model: FaceModel) -> None:
    w = model.mouth_weights()
    assert w.shape == (64,) and np.all((w >= 0) & (w <= 1))
    lm = model.landmarks68
    motion = np.linalg.norm(
        model.expr_basis * model.expr_std[:, None, None], axis=2
    )  # (64, N) typical motion
    chin_comp = int(np.argmax(motion[:, lm[8]]))
    brow_comp = int(np.argmax(motion[:, lm[17:27]].mean(axis=1)))
    assert w[chin_comp] > 0.8  # the component that moves the chin most is a mouth component
    assert w[brow_comp] < 0.5  # the one that moves the brows most is not
    jaw = model.vertices(expression=model.control_to_expression({"face.jaw_open": 1.0}))[0] - model.mean_shape
    region = model.mouth_region()
    assert np.sum(jaw[region] ** 2) / np.sum(jaw**2) > 0.95


def test_default_model_is_cached() -> None:
    assert load_default_model() is load_default_model()


IBUG_MIRROR = (
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
)


def test_landmarks68_table_is_mirror_symmetric_and_in_place(model: FaceModel) -> None:
    assert model.mirror_map is not None
    lm, mm, v = model.landmarks68, model.mirror_map, model.mean_shape
    assert sorted(IBUG_MIRROR) == list(range(68))
    for k in range(68):
        assert mm[lm[k]] == lm[IBUG_MIRROR[k]], k
    # mirror partners really are mirror images of each other in the mean shape
    np.testing.assert_allclose(v[mm] * [-1, 1, 1], v, atol=1e-6)
    # iBUG layout: brows above eyes above nose tip above mouth above chin (y down)
    assert v[lm[17:27], 1].max() < v[lm[36:48], 1].min()
    assert v[lm[36:48], 1].max() < v[lm[30], 1] < v[lm[48:68], 1].min()
    assert v[lm[48:68], 1].max() < v[lm[8], 1]
    assert len(set(lm.tolist())) == 68


def test_closed_faces_fill_eyes_and_mouth(model: FaceModel) -> None:
    closed = model.closed_faces()
    assert model.mouth_loop is not None
    n_fill = len(model.eye_left_loop) + len(model.eye_right_loop) + len(model.mouth_loop) - 6
    assert len(closed) == len(model.faces) + n_fill
    edges: dict[tuple[int, int], int] = {}
    for t in closed.tolist():
        for k in range(3):
            a, b = t[k], t[(k + 1) % 3]
            edges[(a, b)] = edges.get((a, b), 0) + 1
    assert max(edges.values()) == 1  # still consistently wound
    boundary = [e for e in edges if (e[1], e[0]) not in edges]
    loop_vertices = {a for a, _ in boundary}
    # only the outer rim stays open: no eye or mouth vertex is on the boundary any more
    assert not loop_vertices & set(model.eye_left_loop.tolist() + model.mouth_loop.tolist())
    v = model.mean_shape.astype(np.float64)
    fill = closed[len(model.faces) :]
    nz = np.cross(v[fill[:, 1]] - v[fill[:, 0]], v[fill[:, 2]] - v[fill[:, 0]])[:, 2]
    assert np.all(nz <= 0)  # the fills face the camera like the face


CONTROL_REGION = {
    "face.jaw_open": "lower", "face.smile": "lower", "face.frown": "lower", "face.mouth_wide": "lower",
    "face.pucker": "lower", "face.jaw_left": "lower", "face.jaw_right": "lower", "face.brow_raise": "upper",
    "face.brow_lower": "upper", "face.brow_furrow": "upper", "face.eye_squint": "eyes", "face.eye_wide": "eyes",
}  # fmt: skip


def test_every_control_moves_mostly_its_own_region(model: FaceModel) -> None:
    v = model.mean_shape.astype(np.float64)
    lm = model.landmarks68
    y_nose, y_eye = v[lm[33], 1], v[lm[[36, 39, 42, 45]], 1].mean()
    d_eye = np.minimum(
        np.linalg.norm(v[:, :2] - model.eyeball_left_center[:2], axis=1),
        np.linalg.norm(v[:, :2] - model.eyeball_right_center[:2], axis=1),
    )
    regions = {
        "lower": v[:, 1] > y_nose - 0.015,
        "upper": v[:, 1] < y_eye - 0.004,
        "eyes": (d_eye < 0.026) & (v[:, 1] > y_eye - 0.015),
    }
    assert set(CONTROL_REGION) <= set(model.control_names)
    for name, region in CONTROL_REGION.items():
        s = _region_shift(model, name)
        energy = np.sum(s**2, axis=1)
        share = energy[regions[region]].sum() / energy.sum()
        assert share > 0.85, (name, share)
        assert np.abs(s).max() > 0.001, name  # 1.0 is a visible expression (> 1 mm somewhere)
    chin = lm[8]
    assert _region_shift(model, "face.jaw_left")[chin, 0] > 0.001  # toward the actor's left (+x)
    assert _region_shift(model, "face.jaw_right")[chin, 0] < -0.001
    assert up_mean(_region_shift(model, "face.brow_lower"), lm[17:27]) < -0.001
    for eye in ("left", "right"):
        wide = model.eyelid_gap((v + _region_shift(model, "face.eye_wide"))[None], eye)[0]
        assert wide > model.eyelid_gap(v[None], eye)[0] + 0.0005


def up_mean(disp: np.ndarray, idx: np.ndarray) -> float:
    return float(-disp[idx, 1].mean())
