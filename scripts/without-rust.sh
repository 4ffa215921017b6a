# Sourced by the dist smoke scripts: PATH without the directories that hold cargo or rustc,
# as on a user's machine without Rust; stops if cargo can still be found.
without_rust=()
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || [ -e "$d/cargo.exe" ] || without_rust+=("$d"); done
PATH=$(IFS=:; echo "${without_rust[*]}")
export PATH
! command -v cargo >/dev/null || { echo "$(basename "$0"): cargo is still on PATH" >&2; exit 1; }
