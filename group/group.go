// Package group is the registry of a server's bindings: which channels belong
// to which user, group, token, business id and IP, with queries and the
// member snapshots that fan-out sends iterate over.
package group

import "github.com/tiogo/tio/channel"

// Registry indexes the channels of one server. Its methods are safe for
// concurrent use.
type Registry struct{}

// New returns an empty registry.
func New() *Registry { return &Registry{} }

// Attach indexes a channel that was just accepted (by its IP).
func (r *Registry) Attach(ch *channel.Channel) {}

// Detach removes a closed channel from every index.
func (r *Registry) Detach(ch *channel.Channel) {}
