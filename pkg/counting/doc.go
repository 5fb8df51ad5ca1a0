// Package counting is the counting container (`metallb traffic-counter`):
// it keeps an nftables table (NFT, the Kernel of Linux) in step with the
// addresses file the speaker writes (Counter), builds it again when
// someone removed it, and serves the counts on a unix socket, which the
// speaker reads (Client). Only this container holds CAP_NET_ADMIN; the
// formats and rates are package traffic's.
package counting
