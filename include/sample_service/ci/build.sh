#!/bin/sh
# Build step: package the checked-out commit as a reproducible artifact and publish it under its
# content digest. The same commit always gives the same bytes, hence the same digest.
#
# Environment: IMAGE_STORE (directory the artifact is published to), IMAGE_REPOSITORY (image name
# the digest is attached to). Prints the image as a `::sre-result::` line at the end.
set -eu

: "${IMAGE_STORE:?IMAGE_STORE must name the directory the artifact is published to}"
: "${IMAGE_REPOSITORY:?IMAGE_REPOSITORY must name the image repository}"
case "$IMAGE_REPOSITORY" in
    *[!A-Za-z0-9._:/-]* | "")
        echo "build: IMAGE_REPOSITORY has characters an image name cannot have" >&2
        exit 2
        ;;
esac

git_() {
    # The checkout may belong to another user than the step's.
    git -c safe.directory="$PWD" "$@"
}

commit=$(git_ rev-parse --verify 'HEAD^{commit}')
epoch=$(git_ log -1 --format=%ct HEAD)
version=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' hello_api/__init__.py)
if [ -z "$version" ]; then
    echo "build: no __version__ in hello_api/__init__.py" >&2
    exit 1
fi

work=$(mktemp -d)
partial=""
cleanup() {
    rm -rf "$work"
    if [ -n "$partial" ]; then rm -f "$partial"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Exactly the committed tree (no stray files from the workspace), plus the build facts.
mkdir "$work/root"
git_ archive --format=tar --output="$work/source.tar" HEAD
tar -xf "$work/source.tar" -C "$work/root"
printf '{"service": "hello-api", "version": "%s", "commit": "%s"}\n' "$version" "$commit" \
    >"$work/root/BUILD_INFO.json"

# Sorted names, the commit's time on every entry, no owner names, normalised modes, and a gzip
# header without name or time: nothing in the bytes depends on when or where this runs.
tar --create --file="$work/artifact.tar" --directory="$work/root" \
    --sort=name --format=gnu --mtime="@$epoch" \
    --owner=0 --group=0 --numeric-owner --mode='u+rwX,go+rX,go-w' .
gzip -n -9 "$work/artifact.tar"

hex=$(sha256sum "$work/artifact.tar.gz" | cut -d ' ' -f 1)
if [ "${#hex}" -ne 64 ]; then
    echo "build: could not compute the artifact digest" >&2
    exit 1
fi

mkdir -p "$IMAGE_STORE"
target="$IMAGE_STORE/sha256-$hex.tar.gz"
partial="$IMAGE_STORE/.sha256-$hex.tar.gz.$$.partial"
cp "$work/artifact.tar.gz" "$partial"
mv -f "$partial" "$target"
partial=""

size=$(wc -c <"$target" | tr -d ' ')
echo "build: service=hello-api version=$version commit=$commit digest=sha256:$hex size=$size"
echo "build: stored $target"
printf '::sre-result:: {"kind": "image", "image": "%s@sha256:%s", "digest": "sha256:%s", "commit": "%s"}\n' \
    "$IMAGE_REPOSITORY" "$hex" "$hex" "$commit"
