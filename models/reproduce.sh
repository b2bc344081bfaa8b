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
#   bash models/reproduce.sh p4-lvt           # LVT vs a plain ViT with ER, ER, iCaRL (DER), ablations; class-IL CIFAR-10
#   bash models/reproduce.sh p5-til           # PNN, DEN, Piggyback, CPG, VCL, AGS-CL vs fine-tuning, EWC; task-IL
#   bash models/reproduce.sh p3               # offline Split CIFAR-10 (partial), ResNet-32: DER, iCaRL, ABD and baselines
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
# P4 (issue 20): seed 0, 3 epochs per task (FULL: seeds 0-2, the paper's 50 epochs), the ablations at
# memory 200 only. P5 (issue 20): seed 0; Split Fashion-MNIST on the first 1000 training images per
# class (FULL: all 6000, seeds 0-2); Piggyback (EfficientNet-Lite0, 20x the MLP's cost per image) only
# on CIFAR-10, 100 images per class, 2 epochs, 96x96 inputs (FULL: all images, 5 epochs, 224x224, and
# Fashion-MNIST too).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=run
if [ "${1:-}" = list ]; then mode=list; shift; fi
protocol="${1:?usage: reproduce.sh [list] p2-mlp|p2-mlp-til|p2-rn18|p2-rn18-til|p1|gap|slope|kornia|p4-lvt|p5-til}"
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
  p4-lvt)
    # class-IL, partial Split CIFAR-10, offline; one optimiser for all: Adam 1e-3, batch 32, memory batch 32
    ep=3; [ "$FULL" = 1 ] && ep=50
    [ "$FULL" = 1 ] || seeds="${SEEDS:-0}"
    common="--dataset cifar10 --tasks 5 --epochs $ep --batch-size 32 --mem-batch 32 --optimizer adam --lr 0.001"
    for s in $seeds; do for M in 200 500; do
      runs+=("p4-lvt-m$M-s$s|--strategy lvt --backbone vit $common --memory $M --seed $s")
      runs+=("p4-vit-er-m$M-s$s|--strategy er --backbone vit $common --memory $M --seed $s")
      if [ "$M" = 200 ] || [ "$FULL" = 1 ]; then
        runs+=("p4-lvt-noita-m$M-s$s|--strategy lvt --backbone vit $common --memory $M -o attention=self --seed $s")
        runs+=("p4-lvt-1clf-m$M-s$s|--strategy lvt --backbone vit $common --memory $M -o classifiers=1 --seed $s")
      fi
    done; done
    for s in $seeds; do for M in 200 500; do
      runs+=("p4-er-m$M-s$s|--strategy er --backbone reduced_resnet18 $common --memory $M --seed $s")
      runs+=("p4-icarl-m$M-s$s|--strategy icarl --backbone reduced_resnet18 $common --memory $M --seed $s")
    done; done
    for s in $seeds; do for M in 200 500; do
      runs+=("p4-der-m$M-s$s|--strategy der --backbone reduced_resnet18 $common --memory $M --seed $s")
    done; done ;;
  p5-til)
    # task-IL (the task id given at test time), 5 tasks of 2 classes; Adam 1e-3; fine-tuning and EWC with
    # one head per task (--multihead), the six methods have their own per-task heads
    ep=5
    [ "$FULL" = 1 ] || seeds="${SEEDS:-0}"
    fm="--dataset fashion-mnist --backbone mlp --tasks 5 --epochs $ep --batch-size 128 --optimizer adam --lr 0.001 --multihead"
    [ "$FULL" = 1 ] || fm="$fm --train-per-class 1000"
    cf="--dataset cifar10 --backbone mlp --tasks 5 --epochs $ep --batch-size 32 --optimizer adam --lr 0.001 --multihead"
    pb="--strategy piggyback --backbone efficientnet_lite0 --tasks 5 --multihead"
    if [ "$FULL" = 1 ]; then pb="$pb --epochs 5 --batch-size 32"; else pb="$pb --epochs 2 --batch-size 16 --train-per-class 100 -o resolution=96"; fi
    for s in $seeds; do for d in fmnist cifar; do
      c="$fm"; [ "$d" = cifar ] && c="$cf"
      for m in finetune ewc pnn den cpg vcl agscl; do runs+=("p5-$d-$m-s$s|--strategy $m $c --seed $s"); done
      runs+=("p5-$d-vcl_coreset-s$s|--strategy vcl $c -o coreset=200 --seed $s")
      # AGS-CL's default mu 10 zeroes every node of the 3072-input network during the first task
      [ "$d" = cifar ] && runs+=("p5-$d-agscl_mu2-s$s|--strategy agscl $c -o mu=2 --seed $s")
    done
    runs+=("p5-cifar-piggyback-s$s|$pb --dataset cifar10 --seed $s")
    [ "$FULL" = 1 ] && runs+=("p5-fmnist-piggyback-s$s|$pb --dataset fashion-mnist --seed $s")
    done ;;
  p3)
    # Issue 19: DER vs iCaRL vs LwF (memory 20 per class) and ABD vs DeepInversion / LwF.MC / LwF / fine-tuning
    # (no memory), same class order, seeds and backbone (ResNet-32). Scaled (default), for a shared 2-core
    # CPU: the partial CIFAR-10, first 100 training images per class (all 1,017 test images), 5 tasks of 2
    # classes, 5 epochs per task, batch 32, Adam lr 1e-3 (SGD 0.1 learnt nothing in 18 steps a task: see
    # the README), generator 10 iterations of 32 per task, seed 0 (SEEDS="0 1 2" for more). FULL=1: the
    # papers' configuration on CIFAR-100 from DATA=path (the binary version): B0 with 5 / 10 / 20 tasks and
    # B50 + 10 tasks of 5, SGD 0.1 momentum 0.9, 250 epochs (ABD, weight decay 2e-4) / 170 (DER, iCaRL:
    # memory 2,000, ResNet-18 as the DER paper, weight decay 5e-4), batch 128, generator 10,000 iterations of 128.
    if [ "$FULL" = 1 ]; then
      data="--dataset cifar100 --data-dir ${DATA:?FULL=1 p3 needs DATA=folder with cifar-100-binary}"
      opt="--lr 0.1 --momentum 0.9 --weight-decay 2e-4 -o schedule=cosine --batch-size 128"
      splits="b0-5:--tasks 5 b0-10:--tasks 10 b0-20:--tasks 20 b50-10:--initial-classes 50 --tasks 11"
      for s in $seeds; do while read -r sp; do
        tag="${sp%%:*}"; split="${sp#*:}"; c="$data $split --class-order-seed 1993 --backbone resnet32 --epochs 250 $opt"
        runs+=("p3full-$tag-abd-s$s|--strategy abd $c --seed $s")
        runs+=("p3full-$tag-deepinversion-s$s|--strategy deepinversion $c --seed $s")
        for m in lwf lwf_mc finetune; do runs+=("p3full-$tag-$m-s$s|--strategy $m $c --seed $s"); done
        d="$data $split --class-order-seed 1993 --backbone resnet18 --epochs 170 --memory 2000 --batch-size 128 -o schedule=cosine"
        runs+=("p3full-$tag-der-s$s|--strategy der $d --seed $s")
        runs+=("p3full-$tag-der-nomask-s$s|--strategy der $d -o masks=false --seed $s")
        runs+=("p3full-$tag-icarl-s$s|--strategy icarl $d --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --mem-batch 128 --seed $s")
      done < <(echo "$splits" | sed 's/ b/\nb/g'); done
    else
      c="--dataset cifar10 --backbone resnet32 --tasks 5 --epochs 5 --batch-size 32 --train-per-class 100"
      c="$c --optimizer adam --lr 0.001"
      g="-o gen_iters=10 -o gen_batch=32"
      [ -z "${SEEDS:-}" ] && seeds=0
      for s in $seeds; do
        # Adam moves each mask logit by about lr (1e-3) a step whatever the sparsity weight, and a task is 30
        # steps here: the logits start at 0.01 so that pruning can happen (at 0.5 nothing was pruned: p3-der-init05)
        runs+=("p3-der-s$s|--strategy der $c --memory 200 -o sparsity=20 -o mask_init=0.01 --seed $s")
        runs+=("p3-icarl-s$s|--strategy icarl $c --memory 200 --mem-batch 32 --seed $s")
        runs+=("p3-lwf-s$s|--strategy lwf $c --seed $s")
        runs+=("p3-abd-s$s|--strategy abd $c $g --seed $s")
        runs+=("p3-lwf_mc-s$s|--strategy lwf_mc $c --seed $s")
        runs+=("p3-deepinversion-s$s|--strategy deepinversion $c $g --seed $s")
        runs+=("p3-finetune-s$s|--strategy finetune $c --seed $s")
        runs+=("p3-der-nomask-s$s|--strategy der $c --memory 200 -o masks=false --seed $s")
      done
      # the generator at 60 iterations a task instead of 10 (ONLY='-g60-' runs just these); DER's sparsity
      # weight 1 instead of 20 (20 pruned 90 % of the channels)
      for s in $seeds; do
        runs+=("p3-der-sp1-s$s|--strategy der $c --memory 200 -o sparsity=1 -o mask_init=0.01 --seed $s")
        runs+=("p3-abd-g60-s$s|--strategy abd $c -o gen_iters=60 -o gen_batch=32 --seed $s")
        runs+=("p3-deepinversion-g60-s$s|--strategy deepinversion $c -o gen_iters=60 -o gen_batch=32 --seed $s")
      done
    fi ;;
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
