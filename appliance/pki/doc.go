// Package pki holds the cluster's trust: one certificate authority per
// cluster, a certificate per node issued by it, the TLS configurations that
// nodes use to talk to each other, and the join tokens that let a new host
// become a member.
//
// The trust model is deliberately small:
//
//   - A certificate issued by the cluster CA makes its holder a member. Peers
//     verify against that CA only, never against the system roots, so a
//     certificate from a public CA or from another cluster is refused.
//   - The node name is carried in the certificate as a URI SAN
//     (redis-appliance:node:NAME), so a peer learns who it talks to from the
//     verified certificate (NodeName), not from what the peer says.
//   - A host that is joining has no certificate yet. It holds a join token,
//     which carries the SHA-256 fingerprint of the CA, and pins the server's
//     CA to that fingerprint (PinnedConfig) before it sends the token's
//     secret. The cluster stores only the token's hash.
//   - Private keys live in 0600 files (Dir, LoadDir) and are never logged.
package pki
