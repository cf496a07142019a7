"""`archsearch report`: a study (and its export bundle) → one self-contained HTML file, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import optuna

from archsearch.errors import ArchsearchError
from archsearch.fs import ensure_writable_dir
from archsearch.report.bundle import Bundle, find_bundle, load_bundle
from archsearch.report.html import render_page
from archsearch.report.sections import bundle_facts, bundle_sections, study_facts, study_sections


def report_html(study: optuna.Study, bundle: Path | Bundle | None = None, find_in: Path | None = Path(".")) -> str:
    """The report page as a string.

    Args:
        study: the study; its trials give the search part.
        bundle: an export bundle folder (or one already loaded) for the test part.
        find_in: without `bundle`, look for the study's newest bundle one or two folders below
            this one (bundle.find_bundle); None: no test part.
    """
    if bundle is None and find_in is not None:
        bundle = find_bundle(study.study_name, find_in)
    loaded = bundle if isinstance(bundle, Bundle) or bundle is None else load_bundle(bundle)
    same_study = loaded is not None and loaded.study in (None, study.study_name)
    sections, facts = study_sections(study, loaded.trial if same_study else None), study_facts(study)
    if loaded is not None and not same_study:
        facts.append(("note", f"the bundle comes from study {loaded.study}, not {study.study_name}"))
    if loaded is not None:
        sections += bundle_sections(loaded)
        facts += bundle_facts(loaded)
    else:
        facts.append(("test results", "none (no export bundle found; `archsearch best --export DIR` writes one, "
                                      "`archsearch report --bundle DIR` reads it)"))
    return render_page(f"archsearch report: {study.study_name}", facts, sections)


def write_report(study: optuna.Study, out: Path, bundle: Path | None = None, find_in: Path | None = Path(".")) -> Path:
    """Write the report of `study` to `out` (temporary file + rename) and return `out`.

    Args:
        study: the study; its trials give the search part.
        out: the HTML file to write.
        bundle: an export bundle folder (metrics.json, confused.npz, explain/*.png) for the test
            part; None looks for the study's bundle under `find_in` and leaves the part out if
            there is none.
        find_in: where to look for a bundle when none is given (None: do not look).

    Returns:
        `out`.
    """
    out = Path(out)
    page = report_html(study, bundle, find_in)
    ensure_writable_dir(out.parent, f"--out {out}")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ArchsearchError(f"--out {out}: cannot write the report ({e.strerror or e})") from None
    return out
