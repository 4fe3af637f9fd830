"""`pnpkit show`: every setting (None defaults too) with its type and presets, readable docs, --json."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pnpkit.cli import main
from pnpkit.show import parse_fields, rest_to_text


def _show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["show", *args]) == 0
    return capsys.readouterr().out


def test_a_solver_shows_every_setting_with_its_type_and_presets(all_plugins, capsys):
    from pnpkit_dcdp.dcdp import DCDP

    out = _show(capsys, "solver", "dcdp")
    # the settings whose default is None are there, typed as written
    for name in ("iterations", "tau", "lr", "t_start", "t_end", "preset"):
        assert f"\n  {name}: " in out, name
    assert "\n  iterations: int | None = None\n      outer iterations K.\n" in out
    assert "\n  preset: str | None = None\n" in out
    assert "\n  timesteps: list[int] = []\n" in out
    shown = [line.split(":")[0].strip() for line in out.splitlines()
             if line.startswith("  ") and not line.startswith("   ") and ":" in line]
    fields = [f.name for f in dataclasses.fields(DCDP)]
    assert [n for n in shown if n in fields] == fields  # all of them, in order
    # which value each preset gives, BASE ("no preset") first; wrapped lines joined
    flat = " ".join(out.split())
    assert ("presets: 10 (no preset, gaussian-deblur, gaussian-deblur-noisy, motion-deblur, sr4, "
            "sr4-noisy), 20 (box-inpainting, box-inpainting-noisy), 200 (phase-retrieval)") in flat
    assert ("presets: 1000.0 (no preset, box-inpainting, box-inpainting-noisy, sr4, sr4-noisy), "
            "100000.0 (gaussian-deblur, gaussian-deblur-noisy, motion-deblur)") in flat
    assert "presets: False (no preset, box-inpainting, gaussian-deblur, motion-deblur" in flat


def test_the_docstring_is_rendered_as_text(all_plugins, capsys):
    out = _show(capsys, "solver", "dcdp")
    for rest in (":param", ":meth:", ":class:", "``", ".. math::"):
        assert rest not in out, rest
    assert "step() is one round of" in out and "\nMath:\n" in out
    hqs = _show(capsys, "solver", "hqs")
    assert "\n  sigma_end: float | None = None\n      noise level at the last iteration (None: constant).\n" \
        in hqs


def test_factories_show_required_settings_and_what_the_pipeline_passes(all_plugins, capsys):
    out = _show(capsys, "prior", "diffusers")
    assert "\n  path: str (required)\n" in out
    assert "(passed by the pipeline: device, dtype)" in out
    metric = _show(capsys, "metric", "psnr")
    assert "\n  data_range: float = 2.0\n" in metric and "  x:" not in metric


def test_json_has_every_setting_default_and_preset_value(all_plugins, capsys):
    from pnpkit_dcdp.dcdp import DCDP

    info = json.loads(_show(capsys, "solver", "dcdp", "--json"))
    assert info["qualified"] == "dcdp:dcdp" and info["factory"] == "pnpkit_dcdp.dcdp:DCDP"
    settings = {s["name"]: s for s in info["settings"]}
    assert list(settings) == [f.name for f in dataclasses.fields(DCDP)]
    tau = settings["tau"]
    assert tau["type"] == "int | None" and tau["default"] is None and not tau["required"]
    assert tau["base"] == DCDP.BASE["tau"]
    assert tau["presets"] == {p: {**DCDP.BASE, **v}["tau"] for p, v in DCDP.PRESETS.items()}
    assert "presets" not in settings["optimizer"]  # no preset controls it
    assert info["presets"] == {k: dict(v) for k, v in DCDP.PRESETS.items()}
    assert ":param" not in info["doc"] and info["doc"].startswith("Decoupled data consistency")


def test_an_unknown_component_is_one_line(all_plugins, capsys):
    assert main(["show", "solver", "dcpd"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pnpkit: error: no solver named 'dcpd'. Did you mean 'dcdp'?")
    assert "\n" not in err


def test_rest_rendering():
    text = ("Uses :class:`~pnpkit.priors.Prior`, :meth:`Solver.solve` and :math:`x^2` (see\n"
            "`the paper <https://arxiv.org/abs/2403.06054>`_)::\n\n    code\n\n.. note:: mind it")
    assert rest_to_text(text) == ("Uses Prior, Solver.solve() and x^2 (see\n"
                                  "the paper (https://arxiv.org/abs/2403.06054)):\n\n    code\n\n"
                                  "Note: mind it")
    body, params, others = parse_fields(
        "Do it.\n\n:param tuple[int] shape: the shape,\n    no batch.\n:type sigma: float\n"
        ":param sigma: noise.\n:return: the result.")
    assert body == "Do it."
    assert params == {"shape": {"type": "tuple[int]", "doc": "the shape, no batch."},
                      "sigma": {"type": "float", "doc": "noise."}}
    assert others == [("Returns", "the result.")]
