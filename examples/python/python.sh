#!/bin/sh
# Prints the path of a Python 3 that can import msgpack, which worker.py
# needs: $FERRY_PYTHON, then python3 on PATH, then Debian's /usr/bin/python3
# (python3-msgpack installs for it, which need not be the python3 on PATH,
# e.g. under pyenv). Exits 1 saying what to install when none has it.
for py in "$FERRY_PYTHON" "$(command -v python3)" /usr/bin/python3 /usr/local/bin/python3; do
  if [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import msgpack' 2>/dev/null; then
    echo "$py"
    exit 0
  fi
done
echo "no python3 with msgpack found: apt-get install python3-msgpack (Debian/Ubuntu, for /usr/bin/python3)," \
  "or pip install msgpack for your python3, or set FERRY_PYTHON to one that has it" >&2
exit 1
