#!/bin/sh
# Renders the shipped email templates with the sample data and takes desktop
# and phone-sized screenshots with headless Chromium, to look at them.
# Product images in the samples point at shop.example.com; for the
# screenshots they are replaced by generated local SVG placeholders.
#
# usage: sh tests/data/template/screenshot.sh [TANDEM_BINARY] [OUT_DIR]
# (run from the repository root; defaults: ./tandem, build/template-shots)
set -eu
bin=${1:-./tandem}
out=${2:-build/template-shots}
data=tests/data/template
mkdir -p "$out/img"

# one placeholder per product id: a soft tile with the product's initials
i=0
for id in C-101 S-204 A-310 A-322 F-118 A-400 V-501 V-502 V-503; do
    i=$((i + 1))
    case $((i % 6)) in
    0) bg='#e0e7ff' fg='#3730a3' ;;
    1) bg='#dcfce7' fg='#166534' ;;
    2) bg='#fef3c7' fg='#92400e' ;;
    3) bg='#fce7f3' fg='#9d174d' ;;
    4) bg='#e0f2fe' fg='#075985' ;;
    *) bg='#f3e8ff' fg='#6b21a8' ;;
    esac
    cat >"$out/img/$id.svg" <<EOF
<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" viewBox="0 0 400 400">
<rect width="400" height="400" fill="$bg"/>
<circle cx="200" cy="170" r="92" fill="$fg" opacity="0.16"/>
<rect x="130" y="120" width="140" height="110" rx="18" fill="$fg" opacity="0.55"/>
<text x="200" y="320" font-family="Helvetica, Arial, sans-serif" font-size="40" font-weight="700"
 fill="$fg" text-anchor="middle">$id</text>
</svg>
EOF
done

abs=$(cd "$out" && pwd)
for name in ${TEMPLATES:-cart-abandonment browse-abandonment}; do
    sample=$data/sample-${name%%-*}.json
    sed "s#https://shop.example.com/img/\([A-Z0-9-]*\)\.jpg#file://$abs/img/\1.svg#g" "$sample" \
        >"$out/$name.json"
    "$bin" template render "templates/$name.html" --data "$out/$name.json" >"$out/$name.html"
    "$bin" template render "templates/$name.html" --data "$out/$name.json" --text >"$out/$name.txt"
    for size in desktop:700,1750 phone:390,2150; do
        chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
            --window-size="${size#*:}" --screenshot="$abs/$name-${size%%:*}.png" \
            "file://$abs/$name.html" 2>/dev/null
    done
    echo "$out/$name-desktop.png $out/$name-phone.png $out/$name.txt"
done
