#!/usr/bin/env bash
# report.html as a browser sees it. test_report --sample writes the unit
# test's full report; headless Chromium then (a) dumps the DOM, where every
# chart's <svg> must have drawn children, (b) logs the console, which must
# stay silent: the page has no script, so any message at all is an error
# (a blocked fetch, a CSP violation, an uncaught exception), and (c) takes a
# screenshot that must not be blank.
#
# Usage: report_browser.sh TMAP SRC MODEL TEST_REPORT BUILD_DIR
# The page and the screenshot are kept in BUILD_DIR (report-sample.html,
# report-screenshot.png) for a person to look at.
#
# Chromium comes from `scripts/setup.sh --test` (make test, make asan). When
# it is missing the test fails under CI and skips, saying so, elsewhere.
. "$(dirname "$0")/lib.sh"

SAMPLER=$4
OUTDIR=$5
CHROMIUM=${CHROMIUM:-chromium}
PAGE="$OUTDIR/report-sample.html"
SHOT="$OUTDIR/report-screenshot.png"

in_ci() { case "${CI:-}" in "" | false | 0) return 1 ;; *) return 0 ;; esac; }

if ! command -v "$CHROMIUM" >/dev/null 2>&1; then
    if in_ci; then
        echo "FAIL [chromium] '$CHROMIUM' is not installed; run scripts/setup.sh --test"
        n_fail=$((n_fail + 1))
        finish
        exit 1
    fi
    echo "SKIP: '$CHROMIUM' is not installed (scripts/setup.sh --test installs it)"
    exit 77 # ctest's SKIP_RETURN_CODE: a skip, never a pass
fi

# One headless run on a fresh profile, nothing reached over the network;
# stdout and stderr land where lib.sh's checks read them.
browse() {
    local profile
    profile=$(mktemp -d "$WORK/profile.XXXXXX")
    run timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update --disable-sync \
        --disable-dev-shm-usage --user-data-dir="$profile" --enable-logging=stderr --v=0 "$@"
}

# Chromium logs every console message, whatever its level, as
# "...:CONSOLE:LINE] "text", source: URL" (older builds: "CONSOLE(LINE)").
console_lines() { grep -E 'CONSOLE[(:]' "$WORK/.err"; }
console_silent() { ! console_lines; }

# "id count" per chart <svg>: count is the drawn elements inside it.
chart_children() {
    tr -d '\n' < "$WORK/.out" | awk 'BEGIN { RS = "<svg class=\"chart\"" }
        NR > 1 {
            sub(/<\/svg>.*/, "")
            id = match($0, /id="[^"]*"/) ? substr($0, RSTART + 4, RLENGTH - 5) : "?"
            print id, gsub(/<(rect|path|circle|line|polyline|text)[ >\/]/, "")
        }'
}

check "console capture works (a canary page's error is seen)"
printf '<!DOCTYPE html><title>canary</title><script>console.error("tmap-canary")</script>\n' >canary.html
browse --dump-dom "file://$WORK/canary.html"
expect_status 0
expect_true console_lines
expect_err 'tmap-canary'

check "the sample report is written"
rm -f "$PAGE" "$SHOT"
run "$SAMPLER" --sample "$PAGE"
expect_status 0
expect_true test -s "$PAGE"

check "every chart <svg> has drawn children in the rendered DOM"
browse --dump-dom "file://$PAGE"
expect_status 0
expect_out '</html>'
charts=$(chart_children)
echo "$charts" | sed 's/^/  chart /'
expect_true test "$(echo "$charts" | grep -c .)" -eq 6
expect_true test -z "$(echo "$charts" | awk '$2 < 1')"
for id in chart-weights chart-baselines chart-trace chart-combined chart-distributions chart-correlations; do
    expect_true grep -q "^$id " <<<"$charts"
done

check "the report logs nothing to the console"
expect_true console_silent

check "the screenshot is taken and is not blank"
browse --screenshot="$SHOT" --window-size=1280,2400 "file://$PAGE"
expect_status 0
expect_true console_silent
expect_true test -s "$SHOT"
expect_true test "$(head -c 8 "$SHOT" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a
# Width and height are big-endian at bytes 16..23 of the IHDR chunk.
dims=$(od -An -j16 -N8 -tu1 "$SHOT" | awk '{ print $1*16777216+$2*65536+$3*256+$4 "x" $5*16777216+$6*65536+$7*256+$8 }')
expect_true test "$dims" = 1280x2400
# A blank 1280x2400 page compresses to a few kilobytes; the charts and
# text take well over 40.
expect_true test "$(stat -c %s "$SHOT")" -gt 40000
echo "  screenshot: $SHOT ($(stat -c %s "$SHOT") bytes, $dims)"

check "hostile records show up as text: no script runs, nothing is injected"
MODEL_PATH=$3
head -n 10 "$SRC/data/gsm8k/train.jsonl" > hostile.jsonl
cat >> hostile.jsonl <<'JSONL'
{"id": "h1", "prompt": "</script><script>document.title='PWNED'</script> What is 1+1?", "response": "<img src=x onerror=\"document.title='PWNED'\"> 1+1=2\n#### 2"}
{"id": "h2", "prompt": "<svg onload=\"document.title='PWNED'\"><style>*{display:none}</style> What is 2+2?", "response": "ctl \u0001\u0007\u001b\u007f end 2+2=4\n#### 4"}
{"id": "h3", "prompt": "--></style></title><iframe src=javascript:alert(1)> What is 3+3?", "response": "3+3=6\n#### 6"}
JSONL
head -n 6 "$SRC/data/gsm8k/test.jsonl" > hval.jsonl
run "$TMAP" run -m "$MODEL_PATH" -d hostile.jsonl --val hval.jsonl -c 1024 -b 512 -t 2 -n 3 --iters 2 -k 1 --draws 1 \
    --baselines 2 --redraws 1 --indicators steps,length --ratio 0.5 --out hostile --quiet
expect_status 0
expect_true grep -q '&lt;/script&gt;&lt;script&gt;' hostile/report.html
browse --dump-dom "file://$WORK/hostile/report.html"
expect_status 0
expect_out '</html>'
expect_true test -z "$(grep -o 'PWNED</title>' "$WORK/.out")"
# Only the page's own elements: none of the records' tags became one.
expect_true test -z "$(grep -oiE '<(script|img|iframe|style>\*)' "$WORK/.out")"
expect_true test -z "$(grep -oiE '<svg onload' "$WORK/.out")"
expect_out '&lt;svg onload='
expect_true console_silent

check "an invalid surrogate is a bad record, named by file and line"
printf '{"prompt": "lone \\ud800 surrogate", "response": "x"}\n' > surrogate.jsonl
run "$TMAP" data stats surrogate.jsonl
expect_status 2
expect_err "surrogate.jsonl:1: invalid JSON"

finish
