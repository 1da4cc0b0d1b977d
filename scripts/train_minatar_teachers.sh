#!/usr/bin/env bash
# Train (or resume) the shipped MinAtar Double-DQN teachers and publish each into the zoo with its
# model card. Long: about 25 min per game on one core. Run in the background:
#   nohup scripts/train_minatar_teachers.sh breakout asterix > runs/teachers.log 2>&1 &
# Games run in parallel in pairs (one torch thread each) to use both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-3000000}
SEED=${SEED:-0}
BIN=.venv/bin
declare -A ID=([asterix]=Asterix [breakout]=Breakout [freeway]=Freeway [seaquest]=Seaquest [space_invaders]=SpaceInvaders)
games=("$@")
[ ${#games[@]} -gt 0 ] || games=(asterix breakout freeway seaquest space_invaders)

train() {
  local game=$1 out=runs/teacher-$1
  local resume=""
  [ -f "$out/state/meta.json" ] && resume="--resume"
  if [ ! -f "$out/teacher/meta.json" ] || [ -n "$resume" ]; then
    $BIN/poldist train-teacher --env-id "MinAtar/${ID[$game]}-v1" --total-steps "$STEPS" --seed "$SEED" \
      --out "$out" $resume > "runs/teacher-$game.log" 2>&1
  fi
  $BIN/poldist publish-teacher "$out" --name "minatar/$game" --episodes 100 > "runs/publish-$game.log" 2>&1
  echo "$game done: $(grep -m1 'score (epsilon' src/poldist/zoo/minatar/$game/MODEL_CARD.md)"
}

mkdir -p runs
for ((i = 0; i < ${#games[@]}; i += 2)); do
  train "${games[i]}" &
  [ $((i + 1)) -lt ${#games[@]} ] && train "${games[i + 1]}" &
  wait
done
