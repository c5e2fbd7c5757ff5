# find_python X.Y: the path of a working Python X.Y interpreter, pyenv's newest X.Y or else pythonX.Y on
# PATH (a pyenv shim on PATH fails for versions that are not selected, hence the check that it runs).
find_python() {
  local candidate
  for candidate in $(ls -d "$(pyenv root 2> /dev/null || echo "$HOME/.pyenv")/versions/$1".*/bin/python 2> /dev/null | sort -rV) \
                   $(command -v "python$1" || true); do
    if "$candidate" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$1'.split('.')))" 2> /dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "no working Python $1 interpreter found (pyenv or PATH)" >&2
  return 1
}
