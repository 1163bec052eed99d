#!/usr/bin/env bash
# Build and install the ROS 2 interfaces of imkd_ros into a prefix (default: the project's .venv), with rosidl's
# CMake route on the PyPI ros-* wheels (or on a sourced ROS 2 install). Called by `make setup`; safe to rerun
# (CMake rebuilds only what changed; the Makefile calls it only when a definition changed).
#
#   msg/build_interfaces.sh [PREFIX]
#
# 1. stand-ins of the ROS interface packages the PyPI wheels lack: vision_msgs (4.x), autoware_perception_msgs
#    (DetectedObjects and its parts) and tf2_msgs (TFMessage, TF2Error), in msg/<package>/. When such a package is
#    already installed in another prefix of AMENT_PREFIX_PATH (a real ROS 2 install), that one is used and the
#    stand-in is not built. Otherwise the stand-in (same package, message names, fields and RIHS01 hashes as the
#    real one) is built and installed into PREFIX, with the marker share/<package>/IMKD_STANDIN.
# 2. imkd_msgs: the package's own interfaces (msg/*.msg), always built into PREFIX.
# Build trees go to <repo>/build/interfaces/<package>.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
prefix="$(cd "${1:-$repo/.venv}" && pwd)"
python="${PYTHON:-$prefix/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"
build_root="$repo/build/interfaces"
jobs="${IMKD_BUILD_JOBS:-2}"

# ament_index needs the prefix on AMENT_PREFIX_PATH; keep whatever a sourced ROS install put there after it.
other_prefixes="${AMENT_PREFIX_PATH:-}"
export AMENT_PREFIX_PATH="$prefix${other_prefixes:+:$other_prefixes}"
cmake_prefix="$prefix${CMAKE_PREFIX_PATH:+;${CMAKE_PREFIX_PATH//:/;}}"

build() {  # build <source dir> <name>
  local src="$1" name="$2" log="$build_root/$2.log"
  mkdir -p "$build_root"
  echo "building $name ($src) into $prefix ..."
  if ! {
    cmake -S "$src" -B "$build_root/$name" -DCMAKE_PREFIX_PATH="$cmake_prefix" -DCMAKE_INSTALL_PREFIX="$prefix" \
      -DPython3_EXECUTABLE="$python" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release &&
      cmake --build "$build_root/$name" -j"$jobs" &&
      cmake --install "$build_root/$name"
  } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "error: building $name failed; full log: $log" >&2
    exit 1
  fi
}

IFS=: read -r -a prefixes <<<"$other_prefixes"
real_package() {  # real_package <name>: the other prefix holding a real (not stand-in) <name>, or nothing
  local p
  for p in "${prefixes[@]}"; do
    [[ -n "$p" && "$(cd "$p" 2>/dev/null && pwd)" != "$prefix" ]] || continue
    if [[ -e "$p/share/ament_index/resource_index/packages/$1" && ! -e "$p/share/$1/IMKD_STANDIN" ]]; then
      echo "$p"
      return
    fi
  done
}
for standin in vision_msgs autoware_perception_msgs tf2_msgs; do
  real="$(real_package "$standin")"
  if [[ -n "$real" ]]; then
    echo "$standin: using the installed package in $real (stand-in not built)"
    if [[ -e "$prefix/share/$standin/IMKD_STANDIN" ]]; then
      echo "warning: $prefix also holds the imkd_ros $standin stand-in from an earlier setup; remove it" \
        "($prefix/share/$standin, $prefix/lib/lib${standin}__*, the $standin Python package) to be sure" \
        "the real one is used" >&2
    fi
  else
    build "$here/$standin" "$standin"
  fi
done
build "$here" imkd_msgs
echo "interfaces installed into $prefix"
