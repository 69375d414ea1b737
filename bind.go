package tio

import (
	"fmt"
	"slices"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/registry"
)

// Errors returned by Bind.
var (
	// ErrEmptyKey: a user id, group, token or business id may not be empty.
	ErrEmptyKey = registry.ErrEmptyKey
	// ErrNotOpen: the channel has closed (or belongs to another server), so
	// a binding would outlive it.
	ErrNotOpen = registry.ErrNotOpen
)

// Bind binds ch to the user, group, token or business id that to names
// (t-io's Tio.bindUser, bindGroup, bindToken, bindBsId), from any goroutine
// — handlers, hooks, and the WebSocket handshake hook before the connection
// is ready included. A channel has at most one user, token and business id
// (binding another replaces it, reported to Hooks.OnUnbind) and any number
// of groups; a user or token has any number of channels, a business id one
// (binding it to ch takes it from the channel that had it). Binding again
// to what ch is bound to does nothing. A channel that closes leaves every
// binding by itself. Bind fails with ErrInvalidTarget for a target of
// another kind, ErrEmptyKey for an empty name, and ErrNotOpen for a closed
// channel.
func (s *Server) Bind(ch *channel.Channel, to Target) error {
	if !to.kind.Bindable() {
		return fmt.Errorf("%w: cannot bind to %v", ErrInvalidTarget, to)
	}
	return s.groups.Bind(ch, regKind(to.kind), to.key)
}

// Unbind undoes a binding of ch (t-io's Tio.unbindXxx): from the user,
// group, token or business id that from names; with an empty name, from
// whatever ch is bound to of that kind (User("") unbinds its user,
// Group("") takes it out of every group); with All(), from everything. It
// reports whether there was anything to unbind. Unbinding what ch is not
// bound to does nothing. Each unbinding is reported to Hooks.OnUnbind.
func (s *Server) Unbind(ch *channel.Channel, from Target) (bool, error) {
	if from.kind == KindAll {
		had := s.Bindings(ch).any()
		s.groups.UnbindAll(ch)
		return had, nil
	}
	if !from.kind.Bindable() {
		return false, fmt.Errorf("%w: cannot unbind from %v", ErrInvalidTarget, from)
	}
	return s.groups.Unbind(ch, regKind(from.kind), from.key), nil
}

// Bindings is what one channel is bound to: a snapshot.
type Bindings struct {
	User, Token, BsID string   // "" when not bound
	Groups            []string // sorted; nil when in none
}

// InGroup reports whether the bindings include group g.
func (b Bindings) InGroup(g string) bool {
	_, found := slices.BinarySearch(b.Groups, g)
	return found
}

func (b Bindings) any() bool {
	return b.User != "" || b.Token != "" || b.BsID != "" || len(b.Groups) > 0
}

// Bindings returns what ch is bound to (t-io's getXxx of a channel), as a
// snapshot.
func (s *Server) Bindings(ch *channel.Channel) Bindings {
	return Bindings{
		User:   s.groups.Of(ch, registry.KindUser),
		Token:  s.groups.Of(ch, registry.KindToken),
		BsID:   s.groups.Of(ch, registry.KindBsID),
		Groups: s.groups.GroupsOf(ch),
	}
}
