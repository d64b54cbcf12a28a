"""The state-dict keys and shapes of Hugging Face's BertModel for bert-base-uncased.

transformers cannot be installed on the build machines, so the list is produced from the module layout of
transformers' modeling_bert.BertModel (embeddings, encoder.layer[i].{attention.self, attention.output,
intermediate, output}, pooler) with bert-base-uncased's config.json values (vocab_size 30522, hidden_size 768,
num_hidden_layers 12, intermediate_size 3072, max_position_embeddings 512, type_vocab_size 2). It is the list
`{k: list(v.shape) for k, v in BertModel.from_pretrained("bert-base-uncased").state_dict().items()}` prints, in that
order, minus the non-persistent `embeddings.position_ids` buffer (persistent=False since transformers 4.31) -
199 tensors, 109,482,240 parameters, which is the well-known size of bert-base-uncased without its MLM head.

Writes data/bert_base_uncased_keys.json. Run: /usr/bin/python3 tests/golden/make_bert_keys_golden.py
"""
import json
import os

vocab, hidden, layers, inter, positions, types = 30522, 768, 12, 3072, 512, 2
keys = [
    ("embeddings.word_embeddings.weight", [vocab, hidden]),
    ("embeddings.position_embeddings.weight", [positions, hidden]),
    ("embeddings.token_type_embeddings.weight", [types, hidden]),
    ("embeddings.LayerNorm.weight", [hidden]),
    ("embeddings.LayerNorm.bias", [hidden]),
]
for i in range(layers):
    p = f"encoder.layer.{i}."
    for proj in ("query", "key", "value"):
        keys += [(p + f"attention.self.{proj}.weight", [hidden, hidden]), (p + f"attention.self.{proj}.bias", [hidden])]
    keys += [
        (p + "attention.output.dense.weight", [hidden, hidden]), (p + "attention.output.dense.bias", [hidden]),
        (p + "attention.output.LayerNorm.weight", [hidden]), (p + "attention.output.LayerNorm.bias", [hidden]),
        (p + "intermediate.dense.weight", [inter, hidden]), (p + "intermediate.dense.bias", [inter]),
        (p + "output.dense.weight", [hidden, inter]), (p + "output.dense.bias", [hidden]),
        (p + "output.LayerNorm.weight", [hidden]), (p + "output.LayerNorm.bias", [hidden]),
    ]
keys += [("pooler.dense.weight", [hidden, hidden]), ("pooler.dense.bias", [hidden])]
total = 0
for _, shape in keys:
    n = 1
    for d in shape:
        n *= d
    total += n
assert len(keys) == 199 and total == 109482240, (len(keys), total)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "bert_base_uncased_keys.json")
with open(out, "w") as f:
    json.dump({"model": "bert-base-uncased (transformers BertModel)", "parameters": total,
               "keys": [{"name": k, "shape": s} for k, s in keys]}, f, indent=1)
print("wrote", out, len(keys), "keys,", total, "parameters")
