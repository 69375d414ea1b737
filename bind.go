package tio

import (
	"net/netip"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/registry"
)

// Bindings (t-io's Tio.bindXxx / unbindXxx). A channel may be bound to one
// user id, any number of groups, one token and one business id; every open
// channel is indexed by its remote IP. A channel that closes leaves every
// index by itself (Hooks.OnUnbind reports each binding it had). The bind
// methods fail with registry.ErrEmptyKey for an empty key and registry.ErrNotOpen
// for a channel that has closed. They are safe from any goroutine,
// handlers and hooks included.

// Page is one page of a listing (see PageOfGroup and registry.MapPage).
type Page[T any] = registry.Page[T]

// BindUser binds ch to the user id, replacing the user it was bound to. A
// user may have many channels (a phone and a browser).
func (s *Server) BindUser(ch *channel.Channel, userID string) error {
	return s.groups.BindUser(ch, userID)
}

// UnbindUser unbinds ch from its user and returns the user id it had ("" if
// none).
func (s *Server) UnbindUser(ch *channel.Channel) string { return s.groups.UnbindUser(ch) }

// BindGroup adds ch to the group. A channel may be in any number of groups.
func (s *Server) BindGroup(ch *channel.Channel, group string) error {
	return s.groups.BindGroup(ch, group)
}

// UnbindGroup takes ch out of the group and reports whether it was in it.
func (s *Server) UnbindGroup(ch *channel.Channel, group string) bool {
	return s.groups.UnbindGroup(ch, group)
}

// BindToken binds ch to the token, replacing the token it was bound to. A
// token may have many channels.
func (s *Server) BindToken(ch *channel.Channel, token string) error {
	return s.groups.BindToken(ch, token)
}

// UnbindToken unbinds ch from its token and returns the token ("" if none).
func (s *Server) UnbindToken(ch *channel.Channel) string { return s.groups.UnbindToken(ch) }

// BindBsID binds ch to the business id, replacing the one it was bound to.
// A business id has exactly one channel: binding it to ch takes it from the
// channel that had it.
func (s *Server) BindBsID(ch *channel.Channel, bsID string) error {
	return s.groups.BindBsID(ch, bsID)
}

// UnbindBsID unbinds ch from its business id and returns it ("" if none).
func (s *Server) UnbindBsID(ch *channel.Channel) string { return s.groups.UnbindBsID(ch) }

// BindUserToGroup adds every open channel of the user to the group and
// returns how many it added.
func (s *Server) BindUserToGroup(userID, group string) (int, error) {
	return s.groups.BindUserToGroup(userID, group)
}

// UnbindUserFromGroup takes every channel of the user out of the group and
// returns how many it took out.
func (s *Server) UnbindUserFromGroup(userID, group string) int {
	return s.groups.UnbindUserFromGroup(userID, group)
}

// UnbindAll removes every binding of ch: user, groups, token, business id.
func (s *Server) UnbindAll(ch *channel.Channel) { s.groups.UnbindAll(ch) }

// Queries (t-io's Tio.getXxx). Lists of channels are fresh slices in
// ascending channel id, the caller's to keep; they are snapshots, and the
// channels in them may close at any time.

// ChannelsOfUser returns the open channels of the user.
func (s *Server) ChannelsOfUser(userID string) []*channel.Channel {
	return sortedMembers(s.groups.Members(registry.KindUser, userID))
}

// ChannelsOfGroup returns the channels in the group.
func (s *Server) ChannelsOfGroup(group string) []*channel.Channel {
	return sortedMembers(s.groups.Members(groupKind, group))
}

// ChannelsOfToken returns the channels bound to the token.
func (s *Server) ChannelsOfToken(token string) []*channel.Channel {
	return sortedMembers(s.groups.Members(registry.KindToken, token))
}

// ChannelOfBsID returns the channel bound to the business id, or nil.
func (s *Server) ChannelOfBsID(bsID string) *channel.Channel { return s.groups.BsID(bsID) }

// ChannelsOfIP returns the open channels from the IP.
func (s *Server) ChannelsOfIP(ip netip.Addr) []*channel.Channel {
	return sortedMembers(s.groups.MembersOfIP(ip))
}

// Channels returns every open channel.
func (s *Server) Channels() []*channel.Channel { return sortedMembers(s.groups.All()) }

// CountUser returns the number of open channels of the user.
func (s *Server) CountUser(userID string) int { return s.groups.Count(registry.KindUser, userID) }

// CountGroup returns the number of channels in the group.
func (s *Server) CountGroup(group string) int { return s.groups.Count(groupKind, group) }

// CountToken returns the number of channels bound to the token.
func (s *Server) CountToken(token string) int { return s.groups.Count(registry.KindToken, token) }

// CountIP returns the number of open channels from the IP.
func (s *Server) CountIP(ip netip.Addr) int { return s.groups.CountIP(ip) }

// IsInGroup reports whether ch is in the group.
func (s *Server) IsInGroup(ch *channel.Channel, group string) bool {
	return s.groups.InGroup(ch, group)
}

// GroupsOf returns the groups ch is in, sorted.
func (s *Server) GroupsOf(ch *channel.Channel) []string { return s.groups.GroupsOf(ch) }

// UserOf returns the user id ch is bound to, or "".
func (s *Server) UserOf(ch *channel.Channel) string { return s.groups.Of(ch, registry.KindUser) }

// TokenOf returns the token ch is bound to, or "".
func (s *Server) TokenOf(ch *channel.Channel) string { return s.groups.Of(ch, registry.KindToken) }

// BsIDOf returns the business id ch is bound to, or "".
func (s *Server) BsIDOf(ch *channel.Channel) string { return s.groups.Of(ch, registry.KindBsID) }

// PageOfGroup returns page number (from 1) of size channels of the group, in
// ascending channel id (t-io's getPageOfGroup). Convert the page's items
// with registry.MapPage.
func (s *Server) PageOfGroup(group string, number, size int) Page[*channel.Channel] {
	return pageOf(s.groups.Members(groupKind, group), number, size)
}

// PageOfAll returns page number (from 1) of size open channels, in
// ascending channel id (t-io's getPageOfAll).
func (s *Server) PageOfAll(number, size int) Page[*channel.Channel] {
	return pageOf(s.groups.All(), number, size)
}

// BindingSizes returns the number of keys in each binding index (users,
// groups, tokens, business ids, IPs) and of channels with bindings. Once
// every connection has closed, all are zero.
func (s *Server) BindingSizes() registry.Sizes { return s.groups.Sizes() }

// groupKind is registry.KindGroup, for methods whose parameter named group
// shadows the package.
const groupKind = registry.KindGroup

func sortedMembers(chs []*channel.Channel) []*channel.Channel {
	if len(chs) == 0 {
		return nil
	}
	return registry.SortByID(chs)
}

// pageOf sorts a snapshot and cuts a page out of it. Sorting costs
// O(n log n) per call; paging large groups often is the caller's choice.
func pageOf(chs []*channel.Channel, number, size int) Page[*channel.Channel] {
	if size <= 0 || len(chs) <= 1 {
		return registry.Paginate(chs, number, size)
	}
	return registry.Paginate(registry.SortByID(chs), number, size)
}
