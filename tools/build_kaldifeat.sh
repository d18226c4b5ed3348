#!/usr/bin/env bash
# Build kaldifeat (fast Kaldi fbank in C++/torch) from its PyPI source distribution against
# the torch already installed, and cache the wheel so that the next install takes seconds.
#
#   bash tools/build_kaldifeat.sh [PYTHON] [CACHE_DIR]      # what `make setup-kaldifeat` runs
#
# kaldifeat has no wheel for current torch releases. Its CMake build would download
# pybind11 from GitHub; instead pybind11's own source distribution is fetched from PyPI
# and handed to CMake through FETCHCONTENT_SOURCE_DIR_PYBIND11, so nothing beyond PyPI
# is reached. torch >= 2.1 needs C++17. Measured: 1937 s at nice 19 with make -j2 on the
# shared 2-core machine under load ~10-20; a cached wheel installs in ~8 s.
# Environment: KALDIFEAT_VERSION (1.24), PYBIND11_VERSION (3.1.0, the first whose sdist
# carries the CMake project), KALDIFEAT_JOBS (make -j, default: number of cores).
set -euo pipefail

python=${1:-.venv/bin/python}
cache_dir=${2:-$HOME/.cache/auden/kaldifeat}
kaldifeat_version=${KALDIFEAT_VERSION:-1.24}
pybind11_version=${PYBIND11_VERSION:-3.1.0}
jobs=${KALDIFEAT_JOBS:-$(nproc)}

log() { echo "$(date '+%F %T') (build_kaldifeat.sh) $*"; }

command -v cmake > /dev/null || { echo "build_kaldifeat.sh: cmake not found; install it with 'sudo apt-get install cmake'" >&2; exit 1; }
command -v c++ > /dev/null || { echo "build_kaldifeat.sh: no C++ compiler; install it with 'sudo apt-get install g++'" >&2; exit 1; }
"$python" -c "import torch" 2> /dev/null || { echo "build_kaldifeat.sh: '$python' cannot import torch; run 'make setup' first" >&2; exit 1; }

if "$python" -c "import kaldifeat" 2> /dev/null; then
  log "kaldifeat $("$python" -c 'import kaldifeat; print(kaldifeat.__version__)') is installed already"
  exit 0
fi

# A wheel is only good for the torch and Python it was built against.
tag=$("$python" -c "import sys, torch; print(f'torch{torch.__version__}-cp{sys.version_info[0]}{sys.version_info[1]}')")
wheel_dir="$cache_dir/kaldifeat-$kaldifeat_version-$tag"

if ! compgen -G "$wheel_dir/kaldifeat-*.whl" > /dev/null; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "fetching the kaldifeat $kaldifeat_version and pybind11 $pybind11_version sources from PyPI"
  "$python" -m pip download -q --no-deps --no-binary :all: "kaldifeat==$kaldifeat_version" -d "$work/src"
  "$python" -m pip download -q --no-deps --no-binary :all: "pybind11==$pybind11_version" -d "$work/src"
  tar -xzf "$work/src/kaldifeat-$kaldifeat_version.tar.gz" -C "$work"
  tar -xzf "$work/src/pybind11-$pybind11_version.tar.gz" -C "$work"
  pybind11_dir="$work/pybind11-$pybind11_version"
  [ -f "$pybind11_dir/CMakeLists.txt" ] \
    || { echo "build_kaldifeat.sh: the pybind11 $pybind11_version sdist has no CMakeLists.txt; use PYBIND11_VERSION >= 3.0" >&2; exit 1; }

  log "building kaldifeat against $tag with make -j$jobs (about 6 minutes on 2 cores)"
  export KALDIFEAT_CMAKE_ARGS="-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 \
-DFETCHCONTENT_SOURCE_DIR_PYBIND11=$pybind11_dir -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
-DPYTHON_EXECUTABLE=$("$python" -c 'import sys; print(sys.executable)')"
  export KALDIFEAT_MAKE_ARGS="-j$jobs"
  start=$(date +%s)
  # No build isolation: the build must see (and link against) the installed torch.
  "$python" -m pip wheel --no-deps --no-build-isolation -w "$work/wheel" "$work/kaldifeat-$kaldifeat_version"
  log "built in $(($(date +%s) - start)) s"

  mkdir -p "$cache_dir"
  rm -rf "$wheel_dir.tmp"
  mkdir "$wheel_dir.tmp"
  cp "$work"/wheel/kaldifeat-*.whl "$wheel_dir.tmp/"
  mv "$wheel_dir.tmp" "$wheel_dir"
fi

log "installing $(basename "$(compgen -G "$wheel_dir/kaldifeat-*.whl" | sed -n 1p)") from $wheel_dir"
"$python" -m pip install -q --no-deps --force-reinstall "$wheel_dir"/kaldifeat-*.whl
"$python" -c "import kaldifeat, torch; fb = kaldifeat.Fbank(kaldifeat.FbankOptions()); \
print('kaldifeat', kaldifeat.__version__, 'ok:', tuple(fb(torch.zeros(16000)).shape))"
