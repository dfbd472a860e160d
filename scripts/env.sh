# Source me: puts the project's Node 24 (if it had to be fetched) first on PATH.
_detour_repo=$(cd "$(dirname "${BASH_SOURCE:-$0}")/.." && pwd)
[ -x "$_detour_repo/.tools/node/bin/node" ] && PATH="$_detour_repo/.tools/node/bin:$PATH" && export PATH
unset _detour_repo
