"""Find chip and model files, load them into a Catalog, and look specs up by forgiving names.

Search order: the package's own `catalog/data/`, then each of `extra_dirs` in turn. A
directory may hold `chips/*.yaml`, `models/*.yaml` and `models/*.json` (a Hugging Face
config.json; the model's name is the file stem), or such files at its top level, where a
YAML file is a chip if it has chip fields (hbm, ...) and a model if it has num_layers.
A later file whose name matches an earlier one (in the sense of `name_key`) replaces it,
so a user overrides a shipped H100 by dropping their own `h100.yaml` in their directory.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from clustersim.catalog.chip_file import CHIP_KEYS, chip_from_mapping
from clustersim.catalog.hf_config import model_from_hf_config
from clustersim.catalog.model_file import MODEL_KEYS, model_from_mapping
from clustersim.catalog.specs import ChipSpec, ModelSpec
from clustersim.errors import SpecError

DATA_DIR = Path(__file__).parent / "data"
"""The catalog shipped with clustersim."""

_IGNORED = " -_."
Spec = TypeVar("Spec", ChipSpec, ModelSpec)


def name_key(name: str) -> str:
    """The form names are compared in: lower case, with spaces, '-', '_' and '.' dropped.

    So "TPU v5e", "tpu-v5e" and "TPU_V5E" all name one chip, and "Llama-3.1-70B" matches
    "llama3.1-70b" or "llama_3_1_70b". Names that collide this way are one name.

    >>> name_key("Llama-3.1-70B"), name_key("TPU v5e")
    ('llama3170b', 'tpuv5e')
    """
    return "".join(ch for ch in name.lower() if ch not in _IGNORED)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every chip and model clustersim knows, keyed by canonical name.

    `chip(name)` / `model(name)` resolve a name in this order: the canonical name exactly;
    then the canonical name up to `name_key`; then an alias up to `name_key`. An alias
    shared by two specs is ambiguous and raises, listing both.
    """

    chips: Mapping[str, ChipSpec]
    models: Mapping[str, ModelSpec]

    def chip(self, name: str) -> ChipSpec:
        """The chip called `name` (or an alias of it), also when `name` adds a form factor
        and the chip's own memory ("H100-SXM-80GB", "MI300X-192GB"); SpecError listing known
        chips if none, or naming the memory when `name` is another variant ("A100 40GB")."""
        try:
            return _resolve(self.chips, name, "chip")
        except SpecError as unknown:
            base, gb = split_chip_variant(name)
            if base == name:
                raise
            try:
                chip = _resolve(self.chips, base, "chip")
            except SpecError:
                raise unknown from None
            if gb is not None and abs(chip.hbm_bytes / 1e9 - gb) > 0.03 * gb and abs(chip.hbm_bytes / 2**30 - gb) > 0.03 * gb:
                raise SpecError(f"unknown chip {name!r}: the catalog's {chip.name} has {chip.hbm_bytes / 1e9:.0f} GB of "
                                f"HBM, not {gb:g} GB; add a chip file for that variant (--models DIR/chips/)") from None
            return chip

    def model(self, name: str) -> ModelSpec:
        """The model called `name` (or an alias of it), also under the names published rows
        use for the same architecture (`model_name_variants`: an org prefix, an instruct/chat
        or quantized-checkpoint suffix, MLPerf's accuracy target); SpecError listing known
        models if none."""
        try:
            return _resolve(self.models, name, "model")
        except SpecError as unknown:
            for variant in model_name_variants(name)[1:]:
                try:
                    return _resolve(self.models, variant, "model")
                except SpecError:
                    continue
            raise unknown from None

    def __reduce__(self) -> tuple[Any, tuple[dict[str, ChipSpec], dict[str, ModelSpec]]]:
        # read-only mapping proxies do not pickle; rebuild them (sweeps send catalogs to workers)
        return _freeze, (dict(self.chips), dict(self.models))


_VARIANT = re.compile(r"^(?P<base>.*?)(?:[\s_-]*(?:SXM\d?|OAM|HBM\d?e?))*(?:[\s_-]*(?P<gb>\d+(?:\.\d+)?)\s*GB)?$",
                      re.IGNORECASE)


def split_chip_variant(name: str) -> tuple[str, float | None]:
    """A chip name without trailing form-factor words (SXM, OAM, HBM3e: the parts the catalog
    describes; PCIe cards are other chips) and memory size, and that size in GB (None if not
    stated): how MLPerf and vendor tables name a part.

    >>> split_chip_variant("H100-SXM-80GB"), split_chip_variant("MI300X-192GB"), split_chip_variant("B200")
    (('H100', 80.0), ('MI300X', 192.0), ('B200', None))
    """
    m = _VARIANT.match(name.strip())
    if not m or not m.group("base"):
        return name, None
    gb = m.group("gb")
    return m.group("base"), float(gb) if gb else None


_MODEL_SUFFIX = re.compile(r"[-_ ](?:99(?:\.9)?|instruct|chat|hf|it|fp8|fp4|nvfp4|mxfp4|int4|int8|awq|gptq|w8a8|w4a16|"
                           r"quantized|dynamic|fp8-dynamic|v\d+(?:\.\d+)?)$", re.IGNORECASE)


def model_name_variants(name: str) -> list[str]:
    """`name`, then the same architecture's name as published rows vary it: without an org
    prefix ("nvidia/"), a "Meta-" prefix, and trailing suffixes one at a time (MLPerf's
    "-99" / "-99.9" accuracy targets, -Instruct, -chat, -hf, quantized-checkpoint tags, a
    release tag such as -v0.1: the exact name is always tried first).

    >>> model_name_variants("nvidia/Llama-3.3-70B-Instruct-FP8")[-1], model_name_variants("llama2-70b-99.9")[-1]
    ('Llama-3.3-70B', 'llama2-70b')
    >>> model_name_variants("Meta-Llama-3-8B-Instruct")[-1]
    'Llama-3-8B'
    """
    out = [name]
    base = name.rsplit("/", 1)[-1]
    if base.lower().startswith("meta-"):
        base = base[5:]
    if base != name:
        out.append(base)
    while (stripped := _MODEL_SUFFIX.sub("", base)) != base:
        base = stripped
        out.append(base)
    return out


def _resolve(specs: Mapping[str, Spec], name: str, kind: str) -> Spec:
    if name in specs:
        return specs[name]
    key = name_key(name)
    for canonical, spec in specs.items():
        if name_key(canonical) == key:
            return spec
    hits = [spec for spec in specs.values() if any(name_key(a) == key for a in spec.aliases)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        names = ", ".join(spec.name for spec in hits)
        raise SpecError(f"{kind} name {name!r} is ambiguous: an alias of {names}; use the canonical name")
    known = ", ".join(sorted(specs, key=str.lower))
    raise SpecError(f"unknown {kind} {name!r}; known {kind}s: {known}")


def load_catalog(extra_dirs: Sequence[str | Path] = ()) -> Catalog:
    """The shipped catalog, extended and overridden by the files in `extra_dirs` (in order).

    The no-extra-dirs catalog is parsed once per process and shared.
    """
    if not extra_dirs:
        return _shipped_catalog()
    chips, models = _load_dir(DATA_DIR)
    for directory in extra_dirs:
        path = Path(directory)
        if not path.is_dir():
            raise SpecError(f"catalog directory {str(path)!r} does not exist or is not a directory")
        more_chips, more_models = _load_dir(path)
        chips = _merge(chips, more_chips)
        models = _merge(models, more_models)
    return _freeze(chips, models)


@functools.cache
def _shipped_catalog() -> Catalog:
    return _freeze(*_load_dir(DATA_DIR))


def _freeze(chips: dict[str, ChipSpec], models: dict[str, ModelSpec]) -> Catalog:
    return Catalog(chips=MappingProxyType(dict(chips)), models=MappingProxyType(dict(models)))


def _merge(old: dict[str, Spec], new: dict[str, Spec]) -> dict[str, Spec]:
    """`old` with every spec of `new` added, replacing an old spec of the same name_key."""
    replaced = {name_key(n) for n in new}
    merged = {n: s for n, s in old.items() if name_key(n) not in replaced}
    merged.update(new)
    return merged


def _load_dir(directory: Path) -> tuple[dict[str, ChipSpec], dict[str, ModelSpec]]:
    """All specs in one directory; two files naming one spec there is an error."""
    chips: dict[str, tuple[ChipSpec, Path]] = {}
    models: dict[str, tuple[ModelSpec, Path]] = {}
    for path, kind in _spec_files(directory):
        spec = _load_file(path, kind)
        table: dict[str, Any] = chips if isinstance(spec, ChipSpec) else models
        key = name_key(spec.name)
        if key in table:
            raise SpecError(f"{path}: name {spec.name!r} is also defined in {table[key][1]}; rename one of them")
        table[key] = (spec, path)
    return (
        {spec.name: spec for spec, _ in chips.values()},
        {spec.name: spec for spec, _ in models.values()},
    )


def _spec_files(directory: Path) -> Iterator[tuple[Path, str]]:
    """(path, kind) for every spec file under `directory`; kind is chip, model, hf or auto."""
    yield from ((p, "chip") for p in _files(directory / "chips", (".yaml", ".yml")))
    yield from ((p, "model") for p in _files(directory / "models", (".yaml", ".yml")))
    yield from ((p, "hf") for p in _files(directory / "models", (".json",)))
    yield from ((p, "auto") for p in _files(directory, (".yaml", ".yml", ".json")))


def _files(directory: Path, suffixes: Iterable[str]) -> list[Path]:
    if not directory.is_dir():
        return []
    wanted = tuple(suffixes)
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in wanted)


def _load_file(path: Path, kind: str) -> ChipSpec | ModelSpec:
    where = _display(path)
    if path.suffix.lower() == ".json":
        return model_from_hf_config(path, name=path.stem, source=where)
    data = _read_yaml(path, where)
    if kind == "auto":
        kind = detect_kind(data, where)
    return chip_from_mapping(data, where) if kind == "chip" else model_from_mapping(data, where)


def detect_kind(data: Any, where: str) -> str:
    """'chip' or 'model' for a YAML mapping found at a directory's top level."""
    if isinstance(data, Mapping):
        if CHIP_KEYS & set(data):
            return "chip"
        if MODEL_KEYS & set(data):
            return "model"
    raise SpecError(
        f"{where}: neither a chip file (fields {', '.join(sorted(CHIP_KEYS))}) "
        f"nor a model file (fields {', '.join(sorted(MODEL_KEYS))})"
    )


def _read_yaml(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from exc


def _display(path: Path) -> str:
    """Shipped files are named relative to the package (stable across machines)."""
    try:
        return str(path.relative_to(DATA_DIR.parents[2]))
    except ValueError:
        return str(path)
