# Sourced by submit.sh, tests/run and .ci/run so all three set up the same environment:
# use the project's .venv when it is current; else a python3 that already imports foldwise; else (re)create
# .venv from requirements.txt (torch is pinned: that release installs from local disk, others download GBs).
# Puts the chosen interpreter's bin/ first on PATH, so `foldwise` and `python` are the right ones.
foldwise_bootstrap() {
  local repo venv stamp want py
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  venv=${FOLDWISE_VENV:-$repo/.venv}
  stamp=$venv/.foldwise-requirements
  py=${PYTHON:-python3}
  want=$(cat "$repo/requirements.txt" "$repo/pyproject.toml" | sha256sum | cut -c1-16)
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    :
  elif [ ! -d "$venv" ] && "$py" -c 'import foldwise, torch, timm, sklearn, albumentations' 2>/dev/null; then
    echo "foldwise: using the already-installed foldwise of $(command -v "$py")" >&2
    return 0
  else
    echo "foldwise: setting up $venv (first run only; a few minutes)" >&2
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$repo"
    echo "$want" > "$stamp"
  fi
  export PATH="$venv/bin:$PATH"
}
foldwise_bootstrap
