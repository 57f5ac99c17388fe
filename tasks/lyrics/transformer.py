"""The transformers lyrics encoder: finding the model (folder, cache, hub) and running it.

Finding (`locate_transformer`): a local folder is used as it is (its id carries a digest of its
files); a model name is looked up in the Hugging Face cache, then downloaded from the hub with a
progress bar. The hub is asked first for the model's files under a short timeout
(`HUB_TIMEOUT_S`), so an unreachable or offline hub costs seconds, never a hang, and a failed
probe is remembered for the process. `HF_HUB_OFFLINE=1` skips the hub; `HF_ENDPOINT` is read at
call time. Only safetensors weights are fetched (nothing is unpickled).

Running (`TransformerLyricsEncoder`): `AutoTokenizer`/`AutoModel` loaded with
`local_files_only=True`. A text is tokenized without truncation and cut into chunks of at most
`max_tokens` tokens (special tokens and the e5 prefix included in every chunk, capped by the
model's position table); each chunk is mean-pooled over its tokens with the attention mask, and
the text's embedding is the token-weighted mean of its chunks, so long lyrics are averaged,
never silently cut. Chunks are batched (sorted by length to pad less), on CPU or CUDA (fp16
autocast on CUDA).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core.errors import UserInputError
from tasks.lyrics.encoders import l2_normalize

HUB_TIMEOUT_S = 5.0
# Weights as safetensors only; config, tokenizer and the sentencepiece model.
HUB_FILES = ["*.json", "*.safetensors", "*.model"]
HUB_SKIPPED = ["*/*"]  # subfolders: other runtimes' copies (onnx/, openvino/), pooling configs
_unreachable: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class LocatedModel:
    """Where a transformer's files are (`path` None: not available, `reason` says why)."""

    name: str
    path: Path | None
    revision: str = ""
    reason: str = ""


def digest_model_folder(folder: Path) -> str:
    """Short digest of a local model: config/tokenizer files in full, weight files by size plus
    their first and last MiB (hashing gigabytes every run would be slow; retrained weights
    differ in those bytes too)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        size = path.stat().st_size
        digest.update(str(size).encode())
        with path.open("rb") as handle:
            if size <= 4 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(1 << 20))
                handle.seek(-(1 << 20), 2)
                digest.update(handle.read())
    return digest.hexdigest()[:12]


def _hub_offline() -> bool:
    # Read now, not huggingface_hub's copy taken when it was first imported.
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _download(model: str) -> LocatedModel:
    """Download `model` from the hub into the HF cache (see the module docstring)."""
    from huggingface_hub import HfApi, constants, snapshot_download

    if _hub_offline():
        return LocatedModel(
            model, None, reason="not in the Hugging Face cache and HF_HUB_OFFLINE is set"
        )
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    known = _unreachable.get((endpoint, model))
    if known:
        return LocatedModel(model, None, reason=known)
    try:
        info = HfApi(endpoint=endpoint).model_info(model, timeout=HUB_TIMEOUT_S)
        files = {sibling.rfilename for sibling in info.siblings or []}
        if not any(name.endswith(".safetensors") for name in files):
            reason = f"{model} on the hub has no safetensors weights"
        else:
            folder = snapshot_download(
                model,
                revision=info.sha,
                endpoint=endpoint,
                allow_patterns=HUB_FILES,
                ignore_patterns=HUB_SKIPPED,
                etag_timeout=HUB_TIMEOUT_S,
            )
            return LocatedModel(model, Path(folder), revision=(info.sha or "")[:12])
    # Any failure to reach or read the hub (DNS, refused, timeout, HTTP 4xx/5xx, disk) means
    # the same to the user: the model cannot be had now. The reason is named in the notice.
    except Exception as error:
        first = (str(error).splitlines() or [""])[0][:160]
        reason = (
            f"not in the Hugging Face cache and {endpoint} cannot serve it "
            f"({type(error).__name__}: {first})"
        )
    _unreachable[(endpoint, model)] = reason
    return LocatedModel(model, None, reason=reason)


def locate_transformer(model: str) -> LocatedModel:
    """The files of `model`: a local folder, the HF cache, or a fresh hub download."""
    local = Path(model).expanduser()
    if local.is_dir():
        local = local.resolve()
        return LocatedModel(local.name, local, revision=digest_model_folder(local))
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(repo_id=model, local_files_only=True))
    except (OSError, ValueError):
        snapshot = None
    if snapshot is not None and (snapshot / "config.json").exists():
        return LocatedModel(model, snapshot, revision=snapshot.name[:12])
    return _download(model)


def chunk_token_ids(token_ids: Sequence[int], body_tokens: int) -> list[list[int]]:
    """Split token ids (no special tokens) into consecutive chunks of at most `body_tokens`;
    an empty text gives one empty chunk (its embedding is that of the special tokens)."""
    if body_tokens < 1:
        raise ValueError(f"body_tokens must be >= 1, got {body_tokens}")
    ids = list(token_ids)
    if not ids:
        return [[]]
    return [ids[start : start + body_tokens] for start in range(0, len(ids), body_tokens)]


class TransformerLyricsEncoder:
    """A transformers encoder loaded from a local folder (mean pooling, chunk averaging).

    `prefix` (e5 models: "query: ") starts every chunk, after the start token.

    Raises:
        ValueError: the folder holds no loadable tokenizer/model (the message names it), or
            device "cuda" is asked for on a machine without CUDA.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_tokens: int = 256,
        batch_size: int = 8,
        device: str = "auto",
        normalize: bool = True,
        prefix: str = "",
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
            self.model = AutoModel.from_pretrained(
                str(model_path), local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as error:
            raise UserInputError(
                f"cannot load the lyrics encoder from {model_path}: {error}".splitlines()[0]
            ) from error
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise UserInputError(
                "encoder device 'cuda' requested but no CUDA device is available: "
                "use device 'auto' or 'cpu'"
            )
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None) or max_tokens
        # RoBERTa-family position ids start after the padding index: two slots are not usable.
        usable = positions - 2 if "roberta" in (config.model_type or "") else positions
        self.prefix_ids = (
            self.tokenizer(prefix, add_special_tokens=False, verbose=False)["input_ids"]
            if prefix
            else []
        )
        self.max_tokens = max(3 + len(self.prefix_ids), min(max_tokens, usable))
        self.batch_size = batch_size
        self.normalize = normalize
        self.dim = int(config.hidden_size)
        self.chunks_run = 0  # forward-pass chunks since construction (for tests and logs)

    def _special(self) -> tuple[list[int], list[int]]:
        tok = self.tokenizer
        start = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        end = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        return ([start] if start is not None else []), ([end] if end is not None else [])

    def token_chunks(self, text: str) -> list[list[int]]:
        """The chunks (with special tokens and prefix) `text` is embedded as."""
        start, end = self._special()
        head = start + self.prefix_ids
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        body = self.max_tokens - len(head) - len(end)
        return [head + chunk + end for chunk in chunk_token_ids(ids, body)]

    def embed_chunks(self, chunks: list[list[int]]) -> np.ndarray:
        """Mean-pooled embedding of each token-id chunk, shape (n_chunks, dim), float32."""
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = np.zeros((len(chunks), self.dim), dtype=np.float32)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        for begin in range(0, len(order), self.batch_size):
            batch = order[begin : begin + self.batch_size]
            width = max(len(chunks[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(chunks[i])] = torch.tensor(chunks[i], dtype=torch.long)
                mask[row, : len(chunks[i])] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            with (
                torch.inference_mode(),
                torch.autocast(
                    device_type="cuda", dtype=torch.float16, enabled=self.device.type == "cuda"
                ),
            ):
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
            out[batch] = pooled.float().cpu().numpy()
            self.chunks_run += len(batch)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, shape (len(texts), dim), float32 (rules in the module doc)."""
        per_text = [self.token_chunks(text) for text in texts]
        flat = [chunk for chunks in per_text for chunk in chunks]
        chunk_vectors = self.embed_chunks(flat) if flat else np.zeros((0, self.dim), np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        position = 0
        for row, chunks in enumerate(per_text):
            weights = np.array([len(c) for c in chunks], dtype=np.float64)
            block = chunk_vectors[position : position + len(chunks)]
            out[row] = (weights[:, None] * block).sum(0) / weights.sum()
            position += len(chunks)
        return l2_normalize(out) if self.normalize else out
