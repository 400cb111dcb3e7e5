"""FlowPilot pages and their htmx fragments (the JSON API is flowpilot/api.py).

Each view: method → member of an account → access getter (404 outside what the user may
see) → may they write (403) → form (400) → one action → page or fragment.
Every mutating view answers two kinds of client:

- htmx (the page): fragments, the task lane swapped out of band;
- a plain form post (no JavaScript): a redirect back to the page, or the page with errors.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.core.paginator import Page
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flowpilot import actions
from flowpilot.forms import (
    MessageForm,
    MoveTaskForm,
    ResolveSessionForm,
    SessionForm,
    TaskForm,
    TaskUpdateForm,
)
from flowpilot.models import Session, SessionStatus
from flowpilot.queries import (
    SIDEBAR_LIMIT,
    can_write,
    claimed_sessions,
    get_session_for_user,
    my_sessions,
    session_messages,
    session_tasks,
    sessions_page,
    task_in_session,
)
from resolutionflow.http import request_data, see_other
from resolutionflow.permissions import any_member_required
from resolutionflow.ratelimit import limit_per_user

# ---------------------------------------------------------------------------- helpers


def flowpilot_view(view):
    """A read-only session refused to htmx as a toast (the 403 page for a full request)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except actions.SessionReadOnly as denied:
            if request.htmx:
                messages.error(request, str(denied))
                return HttpResponse(status=403)
            raise

    return wrapper


def _lane_tasks(session: Session, refused_update: TaskUpdateForm | None, task_id=None) -> list:
    """The lane's tasks; the one whose status form was refused carries it, bound, to show
    its errors beside what was typed."""
    tasks = list(session_tasks(session))
    for task in tasks:
        task.update_form = refused_update if task.pk == task_id else None
    return tasks


def session_page_context(
    request: HttpRequest,
    session: Session,
    *,
    refused_update: TaskUpdateForm | None = None,
    refused_task_id: int | None = None,
    **extra,
) -> dict:
    """Everything the chat page renders; a fixed number of queries however long the chat.

    ``extra`` carries a refused form, bound (``message_form``, ``resolve_form``,
    ``task_form``); ``refused_update`` is a task's status form, for ``refused_task_id``.
    """
    writable = can_write(session, request.user)
    is_owner = session.owner_id == request.user.pk
    return {
        "session": session,
        "chat_messages": list(session_messages(session)),
        "tasks": _lane_tasks(session, refused_update, refused_task_id),
        # Read only if a template shows it: the live update (``_live_update``) never does.
        "sidebar_sessions": lambda: list(my_sessions(request.user)[:SIDEBAR_LIMIT]),
        "sidebar_claims": lambda: list(claimed_sessions(request.user)[:SIDEBAR_LIMIT]),
        "can_write": writable,
        "is_owner": is_owner,
        "talks_to": talks_to(session, request.user),
        **extra,
    }


def lane_context(
    session: Session,
    user,
    *,
    refused_update: TaskUpdateForm | None = None,
    refused_task_id: int | None = None,
    **extra,
) -> dict:
    return {
        "session": session,
        "tasks": _lane_tasks(session, refused_update, refused_task_id),
        "can_write": can_write(session, user),
        **extra,
    }


def render_lane(request: HttpRequest, session: Session, *, status: int = 200, **extra):
    return render(
        request,
        "flowpilot/session.html#lane",
        lane_context(session, request.user, **extra),
        status=status,
    )


def session_url(session: Session) -> str:
    return reverse("flowpilot:session", args=[session.pk])


# ------------------------------------------------------------------------------ pages


@require_GET
@any_member_required
def sessions(request: HttpRequest) -> HttpResponse:
    """My sessions, most recently active first, a page at a time, and the form to start one."""
    page = sessions_page(request.user, request.GET.get("page"))
    return render(
        request, "flowpilot/sessions.html", sessions_page_context(page, form=SessionForm())
    )


def sessions_page_context(page: Page, **extra) -> dict:
    """What the sessions page renders: the page, its links (1 2 … 7 8 9 … 40) and ``extra``."""
    paginator = page.paginator
    return {
        "page": page,
        "page_links": list(paginator.get_elided_page_range(page.number, on_each_side=2)),
        "ellipsis": paginator.ELLIPSIS,
        **extra,
    }


@require_POST
@any_member_required
@limit_per_user("sessions")
def start_session(request: HttpRequest) -> HttpResponse:
    """Open a session and get FlowPilot's first answer with its steps."""
    form = SessionForm(request_data(request))
    if not form.is_valid():
        page = sessions_page(request.user, request.GET.get("page"))
        return render(
            request,
            "flowpilot/sessions.html",
            sessions_page_context(page, form=form),
            status=400,
        )
    session = actions.start_session(user=request.user, **form.cleaned_data)
    actions.answer(session=session)
    return see_other(request, session_url(session))


@require_GET
@any_member_required
def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    """The chat: history, composer and the task lane, with my sessions beside it."""
    session = get_session_for_user(request.user, session_id)
    if request.htmx and request.GET.get("live"):
        return _live_update(request, session)
    return render(request, "flowpilot/session.html", session_page_context(request, session))


def _live_update(request: HttpRequest, session: Session) -> HttpResponse:
    """What changed, for a chat page following an escalated session (static/js/chat.js):
    the header and banner, the messages after ``after``, and the lane unless ``lane=0``
    (the viewer is typing in it). All out of band; bad parameters mean "everything"."""
    try:
        after = max(int(request.GET.get("after", "0")), 0)
    except ValueError:
        after = 0
    context = session_page_context(
        request,
        session,
        oob=True,
        with_lane=request.GET.get("lane") != "0",
    )
    context["new_messages"] = [m for m in context["chat_messages"] if m.pk > after]
    return render(request, "flowpilot/session.html#live", context)


@require_POST
@any_member_required
@limit_per_user("messages")
@flowpilot_view
def post_message(request: HttpRequest, session_id: int) -> HttpResponse:
    """Send a message; the answer and the refreshed lane come back together."""
    session = get_session_for_user(request.user, session_id)
    actions.check_can_write(session, request.user)
    form = MessageForm(request_data(request))
    if not form.is_valid():
        return _composer_refused(request, session, form)
    if _talks_to_people(request, session):
        note = actions.post_note(session=session, user=request.user, body=form.cleaned_data["body"])
        if not request.htmx:
            return see_other(request, session_url(session) + "#composer")
        context = lane_context(session, request.user, new_messages=[note], added_task_ids=set())
        return render(request, "flowpilot/exchange.html", context)
    exchange = actions.post_message(
        session=session, user=request.user, body=form.cleaned_data["body"]
    )
    if not request.htmx:
        return see_other(request, session_url(session) + "#composer")
    context = lane_context(
        session,
        request.user,
        new_messages=[exchange.message, exchange.reply],
        added_task_ids={task.pk for task in exchange.added_tasks},
    )
    return render(request, "flowpilot/exchange.html", context)


def _composer_refused(request: HttpRequest, session: Session, form: MessageForm) -> HttpResponse:
    """The composer's errors beside what was typed; an empty message does nothing."""
    if not str(form.data.get("body", "")).strip():
        # The page never sends one; a form post without JavaScript goes back to the chat.
        return (
            HttpResponse(status=204) if request.htmx else see_other(request, session_url(session))
        )
    if request.htmx:
        response = render(
            request,
            "flowpilot/session.html#composer-errors",
            {"message_form": form},
            status=400,
        )
        response["HX-Retarget"] = "#composer-errors"
        response["HX-Reswap"] = "outerHTML"
        return response
    context = session_page_context(request, session, message_form=form)
    return render(request, "flowpilot/session.html", context, status=400)


def talks_to(session: Session, user):
    """Whom ``user``'s messages go to when not for FlowPilot, or None (FlowPilot answers).

    Once a senior holds an escalated session, the two people in it talk to each other: the
    senior to the technician, the technician to the senior. FlowPilot answers only when one
    of them presses "Ask FlowPilot"; before the claim it answers as always.
    """
    if session.status != SessionStatus.ESCALATED or session.escalated_to_id is None:
        return None
    if user.pk == session.escalated_to_id:
        return session.owner
    if user.pk == session.owner_id:
        return session.escalated_to
    return None


def _talks_to_people(request: HttpRequest, session: Session) -> bool:
    """Whether the page's message is for the people, not FlowPilot (``talks_to``), unless
    "Ask FlowPilot" was pressed. API clients (flowpilot/api.py) keep the assistant's answer."""
    return talks_to(session, request.user) is not None and request.POST.get("ask") != "flowpilot"


@require_POST
@any_member_required
@flowpilot_view
def resolve_session(request: HttpRequest, session_id: int) -> HttpResponse:
    """Mark my active session resolved (it was fixed without escalating), with a note."""
    session = get_session_for_user(request.user, session_id)
    actions.check_can_write(session, request.user)
    form = ResolveSessionForm(request_data(request))
    if not form.is_valid():
        context = session_page_context(request, session, resolve_form=form)
        return render(request, "flowpilot/session.html", context, status=400)
    try:
        actions.resolve_session(session=session, user=request.user, note=form.cleaned_data["note"])
    except actions.NotResolvable as refusal:
        messages.warning(request, str(refusal))
        return see_other(request, session_url(session))
    messages.success(request, "Resolved. Well done: no escalation needed.")
    return see_other(request, session_url(session))


@require_http_methods(["GET", "POST"])
@any_member_required
@flowpilot_view
def tasks(request: HttpRequest, session_id: int) -> HttpResponse:
    """GET: the lane fragment. POST: add a step by hand."""
    session = get_session_for_user(request.user, session_id)
    if request.method == "GET":
        return render_lane(request, session)
    actions.check_can_write(session, request.user)
    form = TaskForm(request_data(request))
    if not form.is_valid():
        return _lane_form_refused(request, session, task_form=form)
    task = actions.add_task(session=session, user=request.user, **form.cleaned_data)
    if request.htmx:
        return render_lane(request, session, added_task_ids={task.pk})
    return see_other(request, session_url(session) + f"#task-{task.pk}")


def _lane_form_refused(request: HttpRequest, session: Session, **refused) -> HttpResponse:
    """A lane form with errors, shown again with what was typed: the lane, or the whole page."""
    if request.htmx:
        return render_lane(request, session, status=400, **refused)
    context = session_page_context(request, session, **refused)
    return render(request, "flowpilot/session.html", context, status=400)


@require_POST
@any_member_required
@flowpilot_view
def update_task(request: HttpRequest, session_id: int, task_id: int) -> HttpResponse:
    """Change a step's status and outcome note."""
    session = get_session_for_user(request.user, session_id)
    task = task_in_session(session, task_id)
    actions.check_can_write(session, request.user)
    form = TaskUpdateForm(request_data(request))
    if not form.is_valid():
        return _lane_form_refused(request, session, refused_update=form, refused_task_id=task.pk)
    actions.update_task(
        task=task,
        user=request.user,
        status=form.cleaned_data["status"],
        outcome=form.cleaned_outcome(),
    )
    if request.htmx:
        return render_lane(request, session)
    return see_other(request, session_url(session) + f"#task-{task.pk}")


@require_POST
@any_member_required
@flowpilot_view
def move_task(request: HttpRequest, session_id: int, task_id: int) -> HttpResponse:
    """Move a step one place up or down the lane."""
    session = get_session_for_user(request.user, session_id)
    task = task_in_session(session, task_id)
    actions.check_can_write(session, request.user)
    form = MoveTaskForm(request_data(request))
    if not form.is_valid():
        return HttpResponse("Move a step up or down.", status=400, content_type="text/plain")
    actions.move_task(task=task, user=request.user, direction=form.cleaned_data["direction"])
    if request.htmx:
        return render_lane(request, session)
    return see_other(request, session_url(session) + f"#task-{task.pk}")
