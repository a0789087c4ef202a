"""A 1-layer BERT built offline whose layer-0 output is LayerNorm(word embedding), with hand-set
vectors: a = (1,−1,0,0), b = (0,0,1,−1), c = (1,−1,1,−1), so cos(a, c) = cos(b, c) = 1/√2 and
cos(a, b) = 0.  Every other token embeds to 0 (similarity 0 with everything)."""

from pathlib import Path


def build_tiny_bert(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8, max_position_embeddings=64, type_vocab_size=1)
    model = BertModel(config)
    with torch.no_grad():
        emb = model.embeddings
        emb.word_embeddings.weight.zero_()
        emb.word_embeddings.weight[5] = torch.tensor([1.0, -1.0, 0.0, 0.0])
        emb.word_embeddings.weight[6] = torch.tensor([0.0, 0.0, 1.0, -1.0])
        emb.word_embeddings.weight[7] = torch.tensor([1.0, -1.0, 1.0, -1.0])
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.LayerNorm.weight.fill_(1.0)
        emb.LayerNorm.bias.zero_()
    model.save_pretrained(folder)
    return folder
