# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs everything, restores whole held-out pictures and a song
#   make test   installs if needed, runs every package's tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := $(wildcard operators/*/setup.cfg priors/*/setup.cfg plugins/*/setup.cfg)
STAMP := $(VENV)/.installed

.PHONY: install demo lint test bench clean

$(STAMP): requirements.txt setup.cfg $(PACKAGES)
	# The audio dataset builder renders MIDI with FluidSynth and the General MIDI soundfont
	# (Debian packages; about 30 s). Installed only when missing, and only where apt works.
	@test -f /usr/share/sounds/sf2/FluidR3_GM.sf2 || { command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends fluidsynth fluid-soundfont-gm) \
		|| echo "warning: could not install fluidsynth + fluid-soundfont-gm; the audio dataset builder needs them"; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# The registry's torch 2.11 CUDA build (runs on CPU); never the local 2.13 CPU wheel.
	PIP_FIND_LINKS= $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	PIP_FIND_LINKS= $(PY) -m pip install -q --disable-pip-version-check --no-build-isolation \
		-e . $(foreach p,$(PACKAGES),-e $(dir $(p)))
	touch $@

install: $(STAMP)

# The whole-picture and whole-song demo: writes the measurement files (runs/demo-inputs/),
# then restores them at full size. Measured: 4 min 13 s on 2 CPU cores after the install.
demo: $(STAMP)
	$(PY) examples/make_demo_inputs.py --out runs/demo-inputs
	$(VENV)/bin/pnpkit run configs/demo-camera.toml --overwrite
	$(VENV)/bin/pnpkit run configs/demo-astronaut.toml --overwrite
	$(VENV)/bin/pnpkit run configs/separation-song.toml --overwrite
	@echo "Restorations (measurement / A^+ y / result / reference):"
	@echo "  runs/demo-camera/items/camera/figure.png        grey camera, 512 x 512, from a 128 x 128 SR x4 PNG"
	@echo "  runs/demo-astronaut/items/astronaut/figure.png  colour astronaut, 512 x 512, half the pixels missing"
	@echo "  (the restored pictures alone: reconstruction.png next to them; scores: metrics.json)"
	@echo "Separated song (18.7 s chorale, bass / drums / guitar / piano):"
	@echo "  runs/separation-song/items/chorale/reconstruction_<stem>.wav, figure.png (spectrograms)"
	@echo "  references: runs/demo-inputs/stems/chorale_<stem>.wav"

# ruff on the whole tree and mypy on the core (configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Every package's tests/, and the examples in the docstrings (doctests) of every package.
test: lint
	$(PY) -m pytest -q --doctest-modules tests $(foreach p,$(PACKAGES),$(dir $(p))tests) \
		core/pnpkit $(foreach p,$(PACKAGES),$(wildcard $(dir $(p))pnpkit_*))

bench: $(STAMP)
	$(PY) benchmarks/plugins_listing.py

clean:
	rm -rf $(VENV) runs
