"""dvp_engine.facemodel: the parametric face model (paper section 4, eq. 1-2).

``load_default_model()`` returns the model shipped in the package (built by ``tools/build_face_model.py`` from
the MediaPipe face mesh); ``FaceModel.load(path)`` reads any ``FaceModel.1`` ``.npz`` (docs/face_model.md).
"""

from .model import DEFAULT_MODEL_PATH, SCHEMA, FaceModel, load_default_model

__all__ = ["DEFAULT_MODEL_PATH", "SCHEMA", "FaceModel", "load_default_model"]
