"""Who is asking: staff sessions for the pages, bearer tokens for the JSON API, and roles.

Every staff page depends on `require_staff` (no session: back to the login page) and every
admin-only page on `require_admin` (an editor gets 403). The user is re-read from the database
on each request, and the session must carry the user's current session key: logging out,
changing the password or the role, or removing the account ends every session of that user,
copied cookies included (the signed cookie alone is no longer enough).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from newsletter import paths
from newsletter.accounts.models import Role, User
from newsletter.db import transaction

SESSION_USER = "uid"
# The user's session key (users.session_key) at sign-in: logout, a password or role change or
# removing the account replaces it, which ends this session and every copy of its cookie.
SESSION_KEY = "skey"


@dataclass(frozen=True)
class StaffUser:
    id: int
    email: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @classmethod
    def of(cls, user: User) -> StaffUser:
        return cls(id=user.id, email=user.email, role=user.role)


class LoginRequired(Exception):
    """Raised by `require_staff`; the app turns it into a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def login_url(next_path: str) -> str:
    return f"{paths.LOGIN}?next={quote(next_path, safe='/')}"


def current_staff(request: Request) -> StaffUser | None:
    if hasattr(request.state, "staff"):
        cached: StaffUser | None = request.state.staff
        return cached
    from newsletter.accounts.service import get, session_is_current

    staff: StaffUser | None = None
    uid = request.session.get(SESSION_USER)
    if isinstance(uid, int):
        with transaction() as session:
            user = get(session, uid)
            if user is not None and session_is_current(user, request.session.get(SESSION_KEY)):
                staff = StaffUser.of(user)
        if staff is None:
            request.session.clear()
    request.state.staff = staff
    return staff


def require_staff(request: Request) -> StaffUser:
    staff = current_staff(request)
    if staff is None:
        path = request.url.path
        if request.method == "GET" and request.url.query:
            path = f"{path}?{request.url.query}"
        raise LoginRequired(path if request.method == "GET" else paths.ADMIN_HOME)
    return staff


def require_admin(staff: Annotated[StaffUser, Depends(require_staff)]) -> StaffUser:
    if not staff.is_admin:
        raise HTTPException(status_code=403, detail="This page is for admins only.")
    return staff


Staff = Annotated[StaffUser, Depends(require_staff)]
Admin = Annotated[StaffUser, Depends(require_admin)]

_bearer = HTTPBearer(auto_error=False, description="An API token from `newsletter users token`.")


def api_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> StaffUser:
    from newsletter.accounts.service import user_for_api_token

    staff: StaffUser | None = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        with transaction() as session:
            user = user_for_api_token(session, credentials.credentials)
            staff = StaffUser.of(user) if user is not None else None
    if staff is None:
        raise HTTPException(
            status_code=401,
            detail="A valid API token is required (Authorization: Bearer <token>).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return staff


def api_admin(staff: Annotated[StaffUser, Depends(api_user)]) -> StaffUser:
    if not staff.is_admin:
        raise HTTPException(status_code=403, detail="This operation is for admins only.")
    return staff


ApiUser = Annotated[StaffUser, Depends(api_user)]
ApiAdmin = Annotated[StaffUser, Depends(api_admin)]
