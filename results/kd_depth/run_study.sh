#!/usr/bin/env bash
# The distillation-depth study, from scratch: teachers, students at every depth/map/seed, aggregation.
#   make study          # the real study (me5-small teacher, 6-layer students; a few hours on 2 CPU cores)
#   make study-smoke    # the same code path on tiny subsets with a tiny random encoder (CI)
# Idempotent: finished teachers and completed multiruns are not repeated, so an interrupted study resumes.
# Environment: STUDY_OUT (run dirs; default logs/study or a temp dir for the smoke run), RESULTS (aggregated
# tables and plots; default results/kd_depth), SETTINGS (default "A B_swa B_yor D C"), SEEDS, DEPTHS,
# D_DEPTH (the non-zero depth of setting D; default the largest of DEPTHS), SPA_PROJECTION (setting C's set),
# EXTRA_ARGS (overrides added to every run, e.g. "trainer=gpu"). SETTINGS=teacher trains the teacher only.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=${WANDB_MODE:-offline}

if [ "${SMOKE:-0}" = 1 ]; then
  OUT=${STUDY_OUT:-$(mktemp -d)/study}
  RESULTS=${RESULTS:-$OUT/results}
  SETTINGS=${SETTINGS:-"A B_swa D"}
  SEEDS=${SEEDS:-1}
  DEPTHS=${DEPTHS:-0,1}
  LAST_DEPTH=1; ATT_DEPTH=1
  mkdir -p "$OUT"
  TINY="$OUT/tiny_encoder"
  [ -f "$TINY/config.json" ] || $PY - "$TINY" <<'PYEOF'
import sys
from xner.data.registry import load_split
from xner.models.tiny import build_tiny_encoder
words = [w for ref in ("conll2003::train", "masakhaner2:swa:train", "wikiann:swa:train")
         for s in load_split(ref, limit=1500, keep_types=None)[0] for w in s.tokens]
build_tiny_encoder(sys.argv[1], words)
PYEOF
  TEACHER_ARGS=("model.encoder=$TINY" "model.freeze_embeddings=false" "model.optimizer.lr=5e-3"
                "data.train={ref: 'conll2003::train', limit: 2000}" "data.val={ref: 'conll2003::dev', limit: 100}"
                "data.test_limit=50" "trainer.max_epochs=3")
  STUDENT_ARGS=("data.tokenizer=$TINY" "data.train.limit=300" "data.test_limit=50" "model.freeze_embeddings=false"
                "model.optimizer.lr=5e-3")
else
  OUT=${STUDY_OUT:-logs/study}
  RESULTS=${RESULTS:-results/kd_depth}
  SETTINGS=${SETTINGS:-"A B_swa B_yor D C"}
  SEEDS=${SEEDS:-1,2,3}
  DEPTHS=${DEPTHS:-0,1,2,3,6}
  LAST_DEPTH=3; ATT_DEPTH=3
  TEACHER_ARGS=()
  STUDENT_ARGS=()
fi
read -ra EXTRA <<< "${EXTRA_ARGS:-}"
TEACHER_ARGS+=("${EXTRA[@]}")
STUDENT_ARGS+=("${EXTRA[@]}")
mkdir -p "$OUT" "$RESULTS"
log() { echo "[study $(date +%H:%M:%S)] $*"; }

# Teacher: me5-small (12 layers) fine-tuned on English CoNLL-2003 (the spine's model_transfer experiment).
TEACHER_DIR="$OUT/teacher_eng"
if [ ! -f "$TEACHER_DIR/metrics.json" ]; then
  log "training the English teacher"
  $PY train.py experiment=model_transfer hydra.run.dir="$TEACHER_DIR" "${TEACHER_ARGS[@]}"
fi
TEACHER_ENG=$(ls "$TEACHER_DIR"/checkpoints/*.ckpt | head -1)

# students <setting dir> <experiment> <teacher> [extra overrides...]: every cell of one setting.
students() {
  local dir=$1 experiment=$2 teacher=$3; shift 3
  local common=(experiment="$experiment" teacher_ckpt="$teacher" "${STUDENT_ARGS[@]}" "$@")
  run_cells "$dir/uniform" "${common[@]}" distill.map=uniform "distill.depth=$DEPTHS"
  run_cells "$dir/last" "${common[@]}" distill.map=last "distill.depth=$LAST_DEPTH"
  run_cells "$dir/attention" "${common[@]}" distill.map=uniform "distill.depth=$ATT_DEPTH" distill.attention_weight=1.0
}

# run_cells <sweep dir> <overrides...>: a Hydra multirun over seeds (and comma lists); a completed cell
# (marked .complete) is not run again.
run_cells() {
  local dir=$1; shift
  if [ -f "$dir/.complete" ]; then log "done already: $dir"; return; fi
  log "multirun into $dir: $*"
  $PY train.py -m "$@" "seed=$SEEDS" hydra.sweep.dir="$dir" hydra.sweep.subdir='${hydra.job.num}'
  touch "$dir/.complete"
}

aggregate() {
  local dir=$1 name=$2; shift 2
  $PY -m xner.aggregate "$dir" --x distill.depth --series distill.map distill.attention_weight \
      --baseline distill.depth=0 --out "$RESULTS/$name" --title "$name" "$@"
}

for setting in $SETTINGS; do
  case $setting in
    A)
      students "$OUT/A_eng" study_eng "$TEACHER_ENG"
      aggregate "$OUT/A_eng" A_eng --pair eng_news:eng_wiki --pair eng_news:eng_social \
        --pair eng_news:eng_crossner_politics --pair eng_news:eng_crossner_science \
        --pair eng_news:eng_crossner_music --pair eng_news:eng_crossner_literature --pair eng_news:eng_crossner_ai ;;
    B_swa)
      students "$OUT/B_swa" study_swa "$TEACHER_ENG"
      aggregate "$OUT/B_swa" B_swa --pair swa_news:swa_wiki ;;
    B_yor)
      students "$OUT/B_yor" study_yor "$TEACHER_ENG"
      aggregate "$OUT/B_yor" B_yor --pair yor_news:yor_wiki ;;
    D)
      # distillation text from Wikipedia (WikiANN swa train) at depth 0 and full depth
      run_cells "$OUT/D_swa_wikitext" experiment=study_swa_wikitext teacher_ckpt="$TEACHER_ENG" \
        "${STUDENT_ARGS[@]}" distill.map=uniform "distill.depth=0,${D_DEPTH:-${DEPTHS##*,}}"
      aggregate "$OUT/D_swa_wikitext" D_swa_wikitext --pair swa_news:swa_wiki ;;
    C)
      # teacher trained on the projected Spanish set (translate-train via Apertium), then students
      SPA_DIR="$OUT/teacher_spa"
      if [ ! -f "$SPA_DIR/metrics.json" ]; then
        log "training the Spanish translate-train teacher (projection=${SPA_PROJECTION:-heuristic})"
        $PY train.py experiment=translate_train projection="${SPA_PROJECTION:-heuristic}" \
          hydra.run.dir="$SPA_DIR" "${TEACHER_ARGS[@]}"
      fi
      students "$OUT/C_spa" study_spa "$(ls "$SPA_DIR"/checkpoints/*.ckpt | head -1)"
      aggregate "$OUT/C_spa" C_spa --pair spa_news:spa_wiki ;;
    teacher) ;;
    *) echo "unknown setting $setting" >&2; exit 2 ;;
  esac
done
log "aggregated results in $RESULTS"
