// Checksums of the Go modules the CRD manifests are read from (scripts/lib/crds.ts downloads them
// from here, so every download is verified against go.sum instead of depending on a checksum
// database lookup). Update go.sum together with CRD_SOURCES.
module conduit.local/tools/crds

go 1.26.0
