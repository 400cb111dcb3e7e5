"""Reads for FlowPilot: the access getter, who may write, and the engine's view of a session."""

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404

from flowpilot.assistants import ChatLine, Conversation, TriedStep
from flowpilot.models import Message, Session, SessionStatus, Task

SIDEBAR_LIMIT = 40
SESSIONS_PER_PAGE = 25


def get_session_for_user(user, pk: int) -> Session:
    """The session ``pk`` if ``user`` may see it, else 404.

    Technicians see their own sessions; engineers and admins see every session of their
    account. Anything else (another account, another technician's, unknown) is a 404, so
    ids of other tenants are indistinguishable from ids that do not exist.
    """
    try:
        return Session.objects.visible_to(user).select_related("owner", "escalated_to").get(pk=pk)
    except (Session.DoesNotExist, ValueError, TypeError):
        raise Http404("No such session.") from None


def can_write(session: Session, user) -> bool:
    """Whether ``user`` may post messages and change tasks in ``session``.

    The owner works the session while it is active and keeps working it while it waits
    in the escalation queue; once escalated, the senior who claimed it (``escalated_to``)
    may write too. Everyone else who can see it reads. Resolved sessions are read-only.
    """
    if session.account_id != user.account_id:
        return False
    if session.status == SessionStatus.ACTIVE:
        return session.owner_id == user.pk
    if session.status == SessionStatus.ESCALATED:
        return user.pk in (session.owner_id, session.escalated_to_id)
    return False


def my_sessions(user) -> QuerySet[Session]:
    """The sessions ``user`` owns, most recently active first (the sessions page, sidebar)."""
    if user.account_id is None:
        return Session.objects.none()
    return (
        Session.objects.filter(account_id=user.account_id, owner=user)
        .select_related("escalated_to")
        .order_by("-updated_at", "-id")
    )


def sessions_page(user, number: str | None) -> Page:
    """Page ``number`` of ``user``'s sessions (the first for a missing or bad number, the
    last past the end): two queries however many sessions, the count and the page."""
    page = Paginator(my_sessions(user), SESSIONS_PER_PAGE).get_page(number)
    page.object_list = list(page.object_list)
    for session in page.object_list:
        session.owner = user  # no query per row
    return page


def task_in_session(session: Session, task_id: int) -> Task:
    """A task of ``session`` (its ``.session`` is this very object), else 404."""
    try:
        return session.tasks.get(pk=task_id)
    except Task.DoesNotExist:
        raise Http404("No such task.") from None


def claimed_sessions(user) -> QuerySet[Session]:
    """The escalated sessions ``user`` took over (the handoff manager set ``escalated_to``),
    latest activity first: a senior's way back to them from the sidebar. None for others."""
    if user.account_id is None or not user.is_senior:
        return Session.objects.none()
    return (
        Session.objects.filter(
            account_id=user.account_id, escalated_to=user, status=SessionStatus.ESCALATED
        )
        .select_related("escalated_to")
        .order_by("-updated_at", "-id")
    )


def session_messages(session: Session) -> QuerySet[Message]:
    return session.messages.select_related("author").order_by("created_at", "id")


def session_tasks(session: Session) -> QuerySet[Task]:
    return session.tasks.order_by("position", "id")


def conversation_for(session: Session) -> Conversation:
    """Everything the assistant may read about ``session``, as plain data (two queries)."""
    messages = tuple(
        ChatLine(
            role=message.role,
            text=message.body,
            author=message.author.name if message.author else "",
        )
        for message in session_messages(session)
    )
    tasks = tuple(
        TriedStep(
            title=task.title,
            status=task.status,
            outcome=task.outcome,
            command=task.command,
            detail=task.detail,
        )
        for task in session_tasks(session)
    )
    return Conversation(
        problem=session.problem,
        customer=session.customer,
        device=session.device,
        messages=messages,
        tasks=tasks,
    )
