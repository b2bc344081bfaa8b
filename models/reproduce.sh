#!/usr/bin/env bash
# Reproduce the trainer's protocol tables (models/README.md), one run after another on ONE CPU thread.
#
#   bash models/reproduce.sh p2-mlp           # Split Fashion-MNIST, MLP, one head (class-IL training)
#   bash models/reproduce.sh p2-mlp-til       # the same with task-IL (multi-head) training
#   bash models/reproduce.sh p2-rn18          # Split Fashion-MNIST, reduced ResNet-18 (p2-rn18-til likewise)
#   bash models/reproduce.sh p1               # online Split CIFAR-10 (partial copy), the SCR paper's table
#   bash models/reproduce.sh gap              # the SCR gap: online iid / fine-tuning bounds on the P1 stream
#   bash models/reproduce.sh slope            # the SCR gap: ER and SCR with 200 / 400 training images per class
#   bash models/reproduce.sh kornia           # the SCR gap: SCR with kornia 0.4.1's augmentation semantics
#   bash models/reproduce.sh list p1          # print the runs without running them
#
# ONLY=REGEX runs only the runs whose name matches (grep -E). SEEDS="0 1 2" picks the seeds (default: this machine's scaled-down set, see below); FULL=1 runs the
# full protocol (5 seeds, every memory size, the full epoch counts); RESUME=1 skips a run whose
# models/results/<name>/metrics.json exists; DEVICE=cuda runs on a GPU. Each run writes
# models/results/<name>/{metrics.json,accuracy.png}; the table comes from
#   $VENV/bin/python -m edgecl_train summarize models/results/<prefix>*/metrics.json
#
# Scaled down on this project's 2-core CPU machine (the defaults): P2 seeds 0-2 and 5 epochs per task
# (FULL: seeds 0-4, 10 epochs); P1 memory 200 only, seeds 0-2 (FULL: memory 100/200/500, seeds 0-4).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=run
if [ "${1:-}" = list ]; then mode=list; shift; fi
protocol="${1:?usage: reproduce.sh [list] p2-mlp|p2-mlp-til|p2-rn18|p2-rn18-til|p1|gap|slope}"
FULL="${FULL:-0}"
DEVICE="${DEVICE:-cpu}"
if [ "$FULL" = 1 ]; then seeds="${SEEDS:-0 1 2 3 4}"; else seeds="${SEEDS:-0 1 2}"; fi

runs=()
case "$protocol" in
  p2-mlp|p2-rn18|p2-mlp-til|p2-rn18-til)
    bb=mlp; case "$protocol" in p2-rn18*) bb=reduced_resnet18 ;; esac
    ep=5; [ "$FULL" = 1 ] && ep=10
    case "$protocol" in p2-rn18*) [ "$FULL" != 1 ] && ep=1 ;; esac
    common="--dataset fashion-mnist --backbone $bb --tasks 5 --epochs $ep --batch-size 128 --optimizer adam --lr 0.001"
    case "$protocol" in *-til) common="$common --multihead" ;; esac
    for s in $seeds; do
      for m in finetune joint ewc online_ewc lwf lwf_mc; do runs+=("$protocol-$m-s$s|--strategy $m $common --seed $s"); done
      for m in er agem icarl; do runs+=("$protocol-$m-s$s|--strategy $m $common --memory 1000 --mem-batch 128 --seed $s"); done
      runs+=("$protocol-gem-s$s|--strategy gem $common --memory 1000 --seed $s")
    done ;;
  p1)
    mems="200"; [ "$FULL" = 1 ] && mems="100 200 500"
    common="--dataset cifar10 --backbone reduced_resnet18 --tasks 5 --batch-size 10"
    for s in $seeds; do for M in $mems; do
      runs+=("agem-m$M-s$s|--strategy agem $common --memory $M -o ref_current_task=true --seed $s")
      runs+=("mir-m$M-s$s|--strategy mir $common --memory $M --seed $s")
      runs+=("gdumb-m$M-s$s|--strategy gdumb $common --memory $M --seed $s")
      runs+=("icarl-m$M-s$s|--strategy icarl $common --memory $M --selector reservoir --seed $s")
      runs+=("er-m$M-s$s|--strategy er $common --memory $M --seed $s")
      runs+=("scr-m$M-s$s|--strategy scr $common --memory $M --seed $s")
    done; done ;;
  gap)
    common="--dataset cifar10 --backbone reduced_resnet18 --tasks 5 --batch-size 10"
    for s in $seeds; do
      runs+=("finetune-s$s|--strategy finetune $common --seed $s")
      runs+=("iid-online-s$s|--strategy joint $common --seed $s")
    done ;;
  slope)
    common="--dataset cifar10 --backbone reduced_resnet18 --tasks 5 --batch-size 10 --memory 200"
    for s in $seeds; do for pc in 200 400; do
      runs+=("er-m200-pc$pc-s$s|--strategy er $common --train-per-class $pc --seed $s")
    done; done
    for s in $seeds; do for pc in 200 400; do
      runs+=("scr-m200-pc$pc-s$s|--strategy scr $common --train-per-class $pc --seed $s")
    done; done ;;
  kornia)
    # scaled: both augmentations on the 200-per-class subset (a controlled pair at a quarter of the cost);
    # FULL: kornia on all the data, against scr-m200-s* (torchvision-style)
    common="--dataset cifar10 --backbone reduced_resnet18 --tasks 5 --batch-size 10 --memory 200"
    for s in $seeds; do
      if [ "$FULL" = 1 ]; then runs+=("scr-m200-kornia-s$s|--strategy scr $common -o augment=kornia041 --seed $s")
      else runs+=("scr-m200-pc200-kornia-s$s|--strategy scr $common --train-per-class 200 -o augment=kornia041 --seed $s"); fi
    done ;;
  *) echo "unknown protocol $protocol" >&2; exit 2 ;;
esac

if [ -n "${ONLY:-}" ]; then
  sel=(); for r in "${runs[@]}"; do if echo "${r%%|*}" | grep -Eq -- "$ONLY"; then sel+=("$r"); fi; done; runs=("${sel[@]}")
fi
if [ "$mode" = list ]; then printf '%s\n' "${runs[@]}"; exit 0; fi
VENV="$(bash models/venv.sh | tail -n1)"
LOGDIR="${LOGDIR:-/tmp/edgecl-runs}"
mkdir -p "$LOGDIR" models/results
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONPATH="$PWD/models/trainer/src${PYTHONPATH:+:$PYTHONPATH}"  # this clone's trainer
for r in "${runs[@]}"; do
  name="${r%%|*}"; args="${r#*|}"
  if [ "${RESUME:-0}" = 1 ] && [ -f "models/results/$name/metrics.json" ]; then echo "skip $name" >&2; continue; fi
  echo "$(date -u +%FT%TZ) start $name: python -m edgecl_train run $args --report-dir models/results/$name" >&2
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m edgecl_train run $args --device "$DEVICE" --threads 1 --quiet --report-dir "models/results/$name" \
    > "$LOGDIR/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) done  $name: $(tail -n1 "$LOGDIR/$name.log")" >&2
done
