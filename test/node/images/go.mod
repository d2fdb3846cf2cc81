// The test node's images: a pause binary and a small HTTP workload, packed by tools/mkimage.
module netpin.local/test/node/images

go 1.26.0
