"""Groups (docs/groups.md): who is in one, who may change it, and where we stand in it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_GROUP_MEMBERS = 100
"""Members of a group, its creator included: creating or adding past it is refused."""

GROUP_ID_SIZE = 16


class GroupState(StrEnum):
    """INVITED: an invitation waits with the message requests; JOINED: we are a member;
    LEFT / REMOVED: we are not any more (the conversation stays, read-only)."""

    INVITED = "invited"
    JOINED = "joined"
    LEFT = "left"
    REMOVED = "removed"


class MemberState(StrEnum):
    MEMBER = "member"
    REMOVED = "removed"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class GroupMember:
    keys: bytes  # identity keys, 64 bytes: what signatures are checked against
    name: str  # as the admin who added them named them, or our contact's name for them
    admin: bool
    is_me: bool
    contact_id: int | None  # the row we talk to them through (a contact or member-only)
    is_contact: bool  # one of our contacts (not only a member)
    verified: bool  # our contact, and its safety number verified
    joined: bool  # they joined (their group code reached us), or are us and we joined


@dataclass(frozen=True, slots=True)
class Group:
    id: int  # the group's conversation row: what the window, the CLI and messages name
    group_id: bytes  # 16 random bytes, the same for every member
    name: str
    state: GroupState
    members: tuple[GroupMember, ...]  # current members, us included, in the order added
    invited_by: str  # the admin who invited us ("" for the creator)
    created_at: int

    @property
    def me(self) -> GroupMember | None:
        return next((m for m in self.members if m.is_me), None)

    @property
    def am_admin(self) -> bool:
        me = self.me
        return me is not None and me.admin and self.state is GroupState.JOINED

    def member(self, keys: bytes) -> GroupMember | None:
        return next((m for m in self.members if m.keys == keys), None)

    def why_not_writable(self) -> str | None:
        if self.state is GroupState.INVITED:
            return f"join {self.name} before writing to it"
        if self.state is GroupState.LEFT:
            return f"you left {self.name}"
        if self.state is GroupState.REMOVED:
            return f"you were removed from {self.name}"
        return None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One member's copy of our group message: whether their receipt came."""

    member: GroupMember
    delivered: bool
