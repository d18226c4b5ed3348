"""Auto classes: ``model_type`` -> config dataclass / model class, resolved lazily.

Importing this package also registers auden's model types with transformers, so
``transformers.AutoModel.from_pretrained(folder)`` loads an exported auden model.
"""

from auden.auto.hf_registration import register_with_transformers

register_with_transformers()
