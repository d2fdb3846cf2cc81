// The test node's OCI images, built offline from local layers: a pause binary, a small
// HTTP workload, and mkimage, which writes them as image archives for `ctr images import`.
module netpin.local/test/node/images

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
