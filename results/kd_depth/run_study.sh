#!/usr/bin/env bash
# The distillation-depth study, from scratch: teachers, students at every depth/map/seed, aggregation.
#   make study          # the real study (me5-small teacher, 6-layer students; a few hours on 2 CPU cores)
#   make study-smoke    # the same code path on tiny subsets with a tiny random encoder (CI)
# Idempotent: finished teachers and completed multiruns are not repeated, so an interrupted study resumes.
# A run is finished only when its dir holds metrics.json; a cell (multirun) is complete only when every one
# of its jobs is (python -m xner.completeness check-multirun). An incomplete cell stops the script (exit 1)
# and is rerun, all its jobs, by the next invocation (interrupted jobs resume from their last.ckpt).
# Environment: STUDY_OUT (run dirs; default logs/study or a temp dir for the smoke run), RESULTS (aggregated
# tables and plots; default results/kd_depth), SETTINGS (default "A B_swa B_yor D C"), SEEDS, DEPTHS,
# D_DEPTH (the non-zero depth of setting D; default the largest of DEPTHS), SPA_PROJECTION (setting C's set),
# E_DEPTHS (setting E's uniform depths; default 0,2,3,6), CONFIRM_SEEDS (the confirmatory test's seeds;
# default 101-120), CONFIRM_DEPTH (its depth; default 3),
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
  E_DEPTHS=${E_DEPTHS:-0,1}; CONFIRM_SEEDS=${CONFIRM_SEEDS:-1,2}; CONFIRM_DEPTH=${CONFIRM_DEPTH:-1}
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
  SETTINGS=${SETTINGS:-"A B_swa B_yor D C E confirm"}
  SEEDS=${SEEDS:-1,2,3}
  DEPTHS=${DEPTHS:-0,1,2,3,6}
  E_DEPTHS=${E_DEPTHS:-0,2,3,6}
  CONFIRM_SEEDS=${CONFIRM_SEEDS:-$(seq -s, 101 120)}; CONFIRM_DEPTH=${CONFIRM_DEPTH:-3}
  LAST_DEPTH=3; ATT_DEPTH=3
  TEACHER_ARGS=()
  STUDENT_ARGS=()
fi
N_SEEDS=$($PY -c 'import sys; from xner.completeness import multirun_jobs as j; print(len(j(sys.argv[1:])))' \
  "seed=$SEEDS")
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
TEACHER_ENG="$TEACHER_DIR/checkpoints/best.ckpt"

# students <setting dir> <experiment> <teacher> [extra overrides...]: every cell of one setting.
students() {
  local dir=$1 experiment=$2 teacher=$3; shift 3
  local common=(experiment="$experiment" teacher_ckpt="$teacher" "${STUDENT_ARGS[@]}" "$@")
  run_cells "$dir/uniform" "${common[@]}" distill.map=uniform "distill.depth=$DEPTHS"
  run_cells "$dir/last" "${common[@]}" distill.map=last "distill.depth=$LAST_DEPTH"
  run_cells "$dir/attention" "${common[@]}" distill.map=uniform "distill.depth=$ATT_DEPTH" distill.attention_weight=1.0
}

# run_cells <sweep dir> <overrides...>: a Hydra multirun over seeds (and comma lists). A cell is complete when
# every expected job dir <sweep dir>/<job num> (the product of the comma lists' lengths) holds metrics.json;
# a complete cell is not run again, an incomplete one is rerun. .complete marks a checked cell (informative:
# the check, not the marker, decides, so markers left by older versions of this script are not trusted).
run_cells() {
  local dir=$1; shift
  local overrides=("$@" "seed=$SEEDS" hydra.sweep.dir="$dir" 'hydra.sweep.subdir=${hydra.job.num}')
  local rc=0
  $PY -m xner.completeness check-multirun --quiet "$dir" "${overrides[@]}" || rc=$?
  if [ "$rc" = 0 ]; then log "done already: $dir"; return; fi
  [ "$rc" = 1 ] || exit "$rc"  # 2: overrides the check cannot expand (it says why)
  rm -f "$dir/.complete"
  log "multirun into $dir: $*"
  $PY train.py -m "${overrides[@]}"
  if ! $PY -m xner.completeness check-multirun "$dir" "${overrides[@]}"; then
    log "incomplete cell $dir: rerun this script to run it again"; exit 1
  fi
  touch "$dir/.complete"
}

# aggregate <setting dir> <name> [args...]: every cell must have one run per seed (the aggregate refuses else)
aggregate() {
  local dir=$1 name=$2; shift 2
  $PY -m xner.aggregate "$dir" --x distill.depth --series distill.map distill.attention_weight \
      --baseline distill.depth=0 --out "$RESULTS/$name" --title "$name" --expect-runs "$N_SEEDS" "$@"
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
      students "$OUT/C_spa" study_spa "$SPA_DIR/checkpoints/final.ckpt"
      aggregate "$OUT/C_spa" C_spa --pair spa_news:spa_wiki ;;
    E)
      # a gold shift for a low-resource language: Setswana news (MasakhaNER 2.0) -> government (NCHLT)
      run_cells "$OUT/E_tsn/uniform" experiment=study_tsn teacher_ckpt="$TEACHER_ENG" "${STUDENT_ARGS[@]}" \
        distill.map=uniform "distill.depth=$E_DEPTHS"
      run_cells "$OUT/E_tsn/last" experiment=study_tsn teacher_ckpt="$TEACHER_ENG" "${STUDENT_ARGS[@]}" \
        distill.map=last "distill.depth=$LAST_DEPTH"
      aggregate "$OUT/E_tsn" E_tsn --pair tsn_news:tsn_gov ;;
    confirm)
      # the confirmatory test declared in results/kd_depth/CONFIRMATORY.md before it ran: Swahili uniform
      # depth CONFIRM_DEPTH vs 0, news -> WikiANN test, CONFIRM_SEEDS (new seeds)
      saved_seeds=$SEEDS saved_n=$N_SEEDS
      SEEDS=$CONFIRM_SEEDS
      run_cells "$OUT/B_swa_confirm" experiment=study_swa teacher_ckpt="$TEACHER_ENG" "${STUDENT_ARGS[@]}" \
        distill.map=uniform "distill.depth=0,$CONFIRM_DEPTH"
      N_SEEDS=$(tr ',' '\n' <<< "$CONFIRM_SEEDS" | wc -l)
      aggregate "$OUT/B_swa_confirm" B_swa_confirm --pair swa_news:swa_wiki
      SEEDS=$saved_seeds N_SEEDS=$saved_n ;;
    teacher) ;;
    *) echo "unknown setting $setting" >&2; exit 2 ;;
  esac
done
log "aggregated results in $RESULTS"
