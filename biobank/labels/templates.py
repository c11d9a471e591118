"""Label templates as data: loaded from the top-level labels/ folder, checked at start-up.

Each label has a folder with a ``label.toml`` (size, kind, the placeholders and their
longest values, the variants) beside its ZPL and SVG files. A template is named
``<label>-<variant>`` (``cryovial-code128``, ``box-datamatrix``…). Anything wrong with a
template raises TemplateError while loading, so a broken template stops the service from
starting instead of failing at the printer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biobank.errors import Invalid
from biobank.labels import png, svg, zpl
from biobank.labels.symbols import BARCODE_CHARS, DPIS, TemplateError

KINDS = ("aliquot", "box")
FORMATS = ("zpl", "svg", "png")
SYMBOLOGIES = ("code128", "datamatrix")
_LABEL_KEYS = {
    "name",
    "kind",
    "default",
    "description",
    "width_mm",
    "height_mm",
    "barcode_min",
    "fields",
    "variants",
}
_VARIANT_KEYS = {"symbology", "zpl", "svg", "default", "dpi"}


@dataclass
class LabelTemplate:
    """One variant of one label, in every form it has (ZPL per dpi, SVG)."""

    name: str
    label: str
    kind: str
    symbology: str
    description: str
    fields: dict[str, int]
    zpl: dict[int, zpl.ZplTemplate]
    svg: svg.SvgTemplate | None
    default: bool

    @property
    def dpis(self) -> tuple[int, ...]:
        """The printer resolutions this template is laid out for."""
        return tuple(sorted(self.zpl))

    def capacity(self, fmt: str, dpi: int) -> int:
        """The longest barcode this template prints in a format at a resolution."""
        if fmt == "zpl":
            return self.zpl[dpi].barcode_capacity
        return self.svg.capacities[dpi] if self.svg else 0

    def check(self, item: dict[str, str], fmt: str, dpi: int) -> None:
        """Refuse data that would not fit the label (422 naming the tube and the field)."""
        code = item["barcode"]
        limit = self.capacity(fmt, dpi)
        if len(code) > limit:
            raise Invalid(
                f"barcode {code} has {len(code)} characters; template {self.name} "
                f"({fmt}, {dpi} dpi) prints at most {limit}",
                field="barcodes",
            )
        if not BARCODE_CHARS.match(code):
            raise Invalid(
                f"barcode {code!r} has characters a label barcode cannot carry "
                "(printable ASCII only)",
                field="barcodes",
            )
        for name, longest in self.fields.items():
            if len(item[name]) > longest:
                raise Invalid(
                    f"{name} {item[name]!r} of {code} is longer than template "
                    f"{self.name} shows ({longest} characters)",
                    field="template",
                )

    def render(
        self, fmt: str, dpi: int, items: list[dict[str, str]], copies: int = 1
    ) -> tuple[bytes, str]:
        """Labels as one ZPL stream, one SVG (sheet) or one PNG (sheet); and the MIME type."""
        if fmt not in FORMATS:
            raise Invalid(f"unknown format {fmt!r}: zpl, svg or png", field="format")
        if dpi not in DPIS:
            raise Invalid(f"dpi must be one of {', '.join(map(str, DPIS))}", field="dpi")
        if dpi not in self.dpis:
            raise Invalid(
                f"template {self.name} is laid out for "
                f"{' and '.join(map(str, self.dpis))} dpi printers only (its barcode "
                f"would not fit at {dpi} dpi in modules of two dots or more)",
                field="dpi",
            )
        if fmt != "zpl" and self.svg is None:
            raise Invalid(f"template {self.name} is ZPL only", field="template")
        for item in items:
            self.check(item, fmt, dpi)
        if fmt == "zpl":
            template = self.zpl[dpi]
            escape = zpl.escape
            stream = "".join(
                template.render({k: escape(v) for k, v in item.items()}, copies) for item in items
            )
            return stream.encode(), zpl.MIME
        drawing = self.svg
        assert drawing is not None
        if fmt == "svg":
            escape = svg.escape
            if len(items) == 1:
                [item] = items
                document = drawing.document(
                    {k: escape(v) for k, v in item.items()}, drawing.symbol(item["barcode"], dpi)
                )
            else:
                document = drawing.sheet(
                    [
                        drawing.body(
                            {k: escape(v) for k, v in item.items()},
                            drawing.symbol(item["barcode"], dpi),
                        )
                        for item in items
                    ],
                    dpi,
                )
            return document.encode(), svg.MIME
        images = [png.label_image(drawing, item, item["barcode"], dpi) for item in items]
        image = images[0] if len(images) == 1 else png.sheet(drawing, images, dpi)
        return png.encode(image, dpi), png.MIME


class Registry:
    """Every template, by name; the default template of each kind."""

    def __init__(self, templates: dict[str, LabelTemplate]) -> None:
        self.templates = templates
        self.defaults = {t.kind: t for t in templates.values() if t.default}

    def get(self, name: str | None, kind: str, dpi: int | None = None) -> LabelTemplate:
        """A template for a kind of label, or 422. Without a name: the kind's default, or,
        when that is not laid out for ``dpi``, the same label's variant that is."""
        if name is None:
            template = self.defaults.get(kind)
            if template is None:
                raise Invalid(f"there is no {kind} label template", field="template")
            if dpi is not None and dpi not in template.dpis:
                fits = [
                    t
                    for t in self.templates.values()
                    if t.label == template.label and dpi in t.dpis
                ]
                if fits:
                    return sorted(fits, key=lambda t: t.name)[0]
            return template
        template = self.templates.get(name)
        if template is None:
            raise Invalid(
                f"unknown template {name!r}; known: " + ", ".join(sorted(self.templates)),
                field="template",
            )
        if template.kind != kind:
            raise Invalid(
                f"template {name} labels a {template.kind}, not a {kind}", field="template"
            )
        return template

    def describe(self) -> list[dict[str, Any]]:
        """What the templates are, for the API."""
        return [
            {
                "name": t.name,
                "kind": t.kind,
                "symbology": t.symbology,
                "description": t.description,
                "default": t.default,
                "formats": ["zpl"] + (["svg", "png"] if t.svg else []),
                "dpi": list(t.dpis),
                "fields": t.fields,
            }
            for t in sorted(self.templates.values(), key=lambda t: t.name)
        ]


def load(folder: Path) -> Registry:
    """Load and check every label under ``folder``; TemplateError at the first fault."""
    if not folder.is_dir():
        raise TemplateError(f"{folder}: the label template folder does not exist")
    templates: dict[str, LabelTemplate] = {}
    for manifest in sorted(folder.glob("*/label.toml")):
        for template in _load_label(manifest):
            templates[template.name] = template
    if not templates:
        raise TemplateError(f"{folder}: no label templates (*/label.toml)")
    for kind in {t.kind for t in templates.values()}:
        defaults = [t.name for t in templates.values() if t.kind == kind and t.default]
        if len(defaults) != 1:
            raise TemplateError(
                f"{folder}: exactly one {kind} template must be the default, "
                f"found {defaults or 'none'}"
            )
    return Registry(templates)


def _load_label(manifest: Path) -> list[LabelTemplate]:
    source = str(manifest)
    try:
        spec = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{source}: {exc}") from None
    unknown = set(spec) - _LABEL_KEYS
    if unknown:
        raise TemplateError(f"{source}: unknown keys {sorted(unknown)}")
    try:
        label, kind = str(spec["name"]), str(spec["kind"])
        width, height = float(spec["width_mm"]), float(spec["height_mm"])
        fields = {str(k): int(v) for k, v in spec["fields"].items()}
        variants = spec["variants"]
        barcode_min = int(spec.get("barcode_min", 1))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TemplateError(f"{source}: missing or malformed {exc}") from None
    if label != manifest.parent.name:
        raise TemplateError(f"{source}: name {label!r} must be the folder's name")
    if kind not in KINDS:
        raise TemplateError(f"{source}: kind must be one of {KINDS}")
    if "barcode" not in fields or width <= 0 or height <= 0:
        raise TemplateError(f"{source}: give a positive size and a barcode field")
    out = []
    for variant, options in variants.items():
        out.append(
            _load_variant(
                manifest.parent,
                source,
                spec,
                label,
                kind,
                variant,
                options,
                width,
                height,
                fields,
                barcode_min,
            )
        )
    if sum(1 for t in out if t.default) > 1:
        raise TemplateError(f"{source}: at most one variant is the default")
    if out and not any(t.default for t in out):
        out[0].default = True
    for template in out:
        template.default = template.default and bool(spec.get("default", False))
    return out


def _load_variant(
    folder: Path,
    source: str,
    spec: dict[str, Any],
    label: str,
    kind: str,
    variant: str,
    options: dict[str, Any],
    width: float,
    height: float,
    fields: dict[str, int],
    barcode_min: int,
) -> LabelTemplate:
    where = f"{source} [variants.{variant}]"
    unknown = set(options) - _VARIANT_KEYS
    if unknown:
        raise TemplateError(f"{where}: unknown keys {sorted(unknown)}")
    symbology = options.get("symbology")
    if symbology not in SYMBOLOGIES:
        raise TemplateError(f"{where}: symbology must be one of {SYMBOLOGIES}")
    name = f"{label}-{variant}"
    files = options.get("zpl") or {}
    try:
        dpis = tuple(sorted(int(d) for d in options.get("dpi", DPIS)))
    except (TypeError, ValueError):
        raise TemplateError(f"{where}: dpi is a list of resolutions, e.g. [300]") from None
    if not dpis or set(dpis) - set(DPIS):
        raise TemplateError(f"{where}: dpi must be some of {DPIS}")
    if sorted(int(d) for d in files) != list(dpis):
        raise TemplateError(f"{where}: give a ZPL file for each of {dpis} dpi")
    compiled = {}
    for dpi_text, filename in files.items():
        path = folder / filename
        compiled[int(dpi_text)] = zpl.compile_zpl(
            _read(path),
            source=str(path),
            name=name,
            dpi=int(dpi_text),
            width_mm=width,
            height_mm=height,
            fields=fields,
            symbology=symbology,
            barcode_min=barcode_min,
        )
    drawing = None
    if options.get("svg"):
        path = folder / options["svg"]
        drawing = svg.compile_svg(
            _read(path),
            source=str(path),
            name=name,
            width_mm=width,
            height_mm=height,
            fields=fields,
            barcode_min=barcode_min,
            symbology=symbology,
            dpis=dpis,
        )
    return LabelTemplate(
        name=name,
        label=label,
        kind=kind,
        symbology=symbology,
        description=str(spec.get("description", "")),
        fields=fields,
        zpl=compiled,
        svg=drawing,
        default=bool(options.get("default")),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: {exc}") from None
