#!/usr/bin/env bash
# F1 parity of bf16 autocast against fp32 (see README.md here; the criterion was written before the runs).
#   ./results/bf16_parity/run.sh        # about 45 min on 2 CPU cores; resumable
# For each seed: me5-small fine-tuned one epoch on English CoNLL-2003 (experiment=model_transfer's recipe) in
# fp32 (trainer.precision=32-true) and in bf16 (bf16-mixed), tested on English news and zero-shot on Swahili news and
# Wikipedia; then the fp32 model tested again in bf16 (evaluation parity). A run is finished when its dir holds
# metrics.json (written last); finished runs are skipped, so an interrupted script resumes.
# Environment: PARITY_OUT (run dirs; default logs/bf16_parity), SEEDS (default "1 2 3"), EXTRA_ARGS.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${PARITY_OUT:-logs/bf16_parity}
SEEDS=${SEEDS:-"1 2 3"}
read -ra EXTRA <<< "${EXTRA_ARGS:-}"
TESTS='+data.test={eng_news: "conll2003::test", swa_news: "masakhaner2:swa:test", swa_wiki: "wikiann:swa:test"}'
for seed in $SEEDS; do
  for prec in fp32 bf16; do
    dir="$OUT/train_${prec}_s$seed"
    [ -f "$dir/metrics.json" ] && continue
    precision=32-true; [ "$prec" = bf16 ] && precision=bf16-mixed
    echo "[parity $(date +%H:%M:%S)] seed $seed: training in $prec"
    $PY train.py experiment=model_transfer "seed=$seed" "trainer.precision=$precision" '~data.test' "$TESTS" \
      logger=csv "hydra.run.dir=$dir" "${EXTRA[@]}"
  done
  dir="$OUT/eval_bf16_s$seed"
  if [ ! -f "$dir/metrics.json" ]; then
    echo "[parity $(date +%H:%M:%S)] seed $seed: the fp32 model tested in bf16"
    $PY evaluate.py "ckpt_path=$OUT/train_fp32_s$seed/checkpoints/best.ckpt" trainer.precision=bf16-mixed eval_splits=swa \
      '+data.test.eng_news=conll2003::test' "hydra.run.dir=$dir" "${EXTRA[@]}"
  fi
done
$PY results/bf16_parity/aggregate.py "$OUT" results/bf16_parity
