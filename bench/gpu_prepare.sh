#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what a GPU session's device call needs and the device image lacks:
# Python 3.12 wheels of archsearch's pure dependencies missing there (Optuna and its SQLAlchemy /
# Alembic stack, pydantic, and the typer / rich versions the CLI is tested with) and the four
# Fashion-MNIST IDX files, in .gpukit/ (git-ignored; ~12 MB of wheels + 30 MB of data, under the
# device tool's 64 MiB). The device image has torch, torchvision, numpy, scikit-learn, PyYAML,
# pytest and hypothesis. Then run bench/gpu_session.sh there with `carry: [".gpukit"]`.
#
#   bash bench/gpu_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpukit
mkdir -p "$KIT/whl" "$KIT/fmnist"
WHEELS=(optuna==5.0.0 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 colorlog==6.12.0
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        typing-extensions==4.16.0 typer==0.29.2 rich==15.0.0 shellingham==1.5.4 annotated-doc==0.0.7)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$KIT/whl" "${WHEELS[@]}"
SRC=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -f "$SRC/$f.gz" ]; then
        echo "missing $SRC/$f.gz: apt-get install -y dataset-fashion-mnist (or set FMNIST_DIR)" >&2; exit 2
    fi
    cp "$SRC/$f.gz" "$KIT/fmnist/"
done
ls "$KIT/whl"
du -sh "$KIT"
