# Sourced by scripts/demo.sh: `prepare_demo_out DIR` makes DIR ready for a fresh demo.
# The demo deletes only what it made: DIR must be new, empty, or marked by an earlier demo
# (DIR/.gcpbench-demo), and then only the entries the demo writes are removed, so that
# `DEMO_OUT=runs make demo` can never delete anyone's runs.
DEMO_MARKER=.gcpbench-demo
DEMO_ENTRIES=(data cache resnet18_gap resnet18_gcp landscape.png imagenet-c imagenet-p coco detect_faster_rcnn report)

prepare_demo_out() {
  local out=$1
  if [ -e "$out" ] && [ ! -d "$out" ]; then
    echo "error: DEMO_OUT '$out' is a file; set DEMO_OUT to a new folder" >&2
    return 2
  fi
  if [ -d "$out" ] && [ ! -f "$out/$DEMO_MARKER" ] && [ -n "$(ls -A "$out")" ]; then
    echo "error: DEMO_OUT '$out' holds files the demo did not make (no $DEMO_MARKER in it); the demo" \
         "replaces only a folder it created: set DEMO_OUT to a new folder (a demo folder of an older" \
         "version: delete it once, e.g. make clean-demo)" >&2
    return 2
  fi
  local entry
  for entry in "${DEMO_ENTRIES[@]}"; do
    rm -rf "${out:?}/$entry"
  done
  mkdir -p "$out"
  echo "made by scripts/demo.sh: the next demo replaces only its own entries here" > "$out/$DEMO_MARKER"
}
