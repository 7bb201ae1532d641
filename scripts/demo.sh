#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in synthetic data, on the CPU.
# Every step writes into $OUT (default runs/demo; a folder the demo made, or a new one); the report comes last.
set -euo pipefail
cd "$(dirname "$0")/.."
G="$PWD/.venv/bin/gcpbench"
OUT=${DEMO_OUT:-runs/demo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one intra-op thread per process is fastest on 2 cores
export GCPBENCH_CACHE=${GCPBENCH_CACHE:-$PWD/$OUT/cache}
source scripts/demo_out.sh
prepare_demo_out "$OUT" || exit $?  # never deletes what an earlier demo did not make
start=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - start )) s] $*"; }

step "model zoo (excerpt)"
$G zoo -m resnet18_gap -m resnet18_gcp -m resnet18_gcp_mpn -m resnet18_gcp_dropcov -m resnet50_gcp -m mobilenetv2_gcp -m shufflenetv2_gcp

step "synthetic classification set (4 classes, 64 px; equal channel means, different correlations)"
$G data synth --out "$OUT/data" --classes 4 --train-per-class 48 --val-per-class 12 --quiet

for head in gap gcp; do
  step "train resnet18 $head (LRadju stretched to 3 epochs, landscape probe every 4 iterations)"
  $G train resnet18 --head "$head" --schedule LRadju --epochs 3 --batch-size 16 --lr 0.05 --workers 0 \
     --data "$OUT/data" --out "$OUT/resnet18_$head" --landscape-every 4 --landscape-num-eta 8 --quiet
  step "eval-imagenet resnet18 $head"
  $G eval-imagenet --ckpt "$OUT/resnet18_$head/checkpoints/best.pt" --data "$OUT/data" --workers 0 --quiet
done

for norm in mpn dropcov; do
  step "train resnet18 gcp --gcp-norm $norm (the GCP family: same schedule, another normalisation)"
  $G train resnet18 --head gcp --gcp-norm "$norm" --schedule LRadju --epochs 3 --batch-size 16 --lr 0.05 --workers 0 \
     --data "$OUT/data" --out "$OUT/resnet18_gcp_$norm" --landscape-every 4 --landscape-num-eta 8 --quiet
done

step "landscape figure: GAP vs GCP"
$G landscape "$OUT/resnet18_gap" "$OUT/resnet18_gcp" --out "$OUT/landscape.png" --log-y

step "ImageNet-C / -P style data from the synthetic val set (15 corruptions x 5 severities; 8 perturbations)"
# --native-size: the synthetic set's own 64 px (recorded in each tree's marker, shown by the report);
# without it every image gets the benchmark's Resize 256 + CenterCrop 224
$G data make-c --src "$OUT/data/val" --out "$OUT/imagenet-c" --per-class 2 --workers 2 --native-size --quiet
$G data make-p --src "$OUT/data/val" --out "$OUT/imagenet-p" --per-class 1 --workers 2 --native-size --quiet
for head in gap gcp; do
  step "eval-c / eval-p resnet18 $head"
  $G eval-c --ckpt "$OUT/resnet18_$head/checkpoints/best.pt" --data "$OUT/imagenet-c" --clean-data "$OUT/data/val" --workers 0 --quiet
  $G eval-p --ckpt "$OUT/resnet18_$head/checkpoints/best.pt" --data "$OUT/imagenet-p" --workers 0 --quiet
done
step "detection: Faster R-CNN fine-tune from the GCP model (GCP_M backbone, synthetic COCO-format set)"
$G data synth --task detection --out "$OUT/coco" --quiet
$G detect --framework faster_rcnn --backbone resnet18_gcp_m --ckpt "$OUT/resnet18_gcp/checkpoints/best.pt" \
   --data "$OUT/coco" --max-iters 24 --work-dir "$OUT/detect_faster_rcnn" --quiet

step "report (methods.md and landscape_methods.png: GAP, isqrt, mpn, dropcov, one band each)"
$G report "$OUT" --out "$OUT/report"
echo
echo "demo finished in $(( $(date +%s) - start )) s; report: $OUT/report/report.md"
