"""FlowPilot's JSON API (docs/API.md): sessions, their chat and their task lane.

The same URLs as the pages (``resolutionflow.http.page_or_api`` sends API clients here).
Each view: ``api_view`` (method, member of an account, the one error shape) → access getter
(404 outside what the user may see) → may they write (403) → form (400) → one action → JSON.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from flowpilot import actions
from flowpilot.forms import (
    MessageForm,
    MoveTaskForm,
    ResolveSessionForm,
    SessionForm,
    TaskForm,
    TaskUpdateForm,
)
from flowpilot.models import Message, Session, Task
from flowpilot.queries import (
    can_write,
    get_session_for_user,
    session_messages,
    session_tasks,
    sessions_page,
    task_in_session,
)
from resolutionflow.http import ApiError, api_view, valid_form
from resolutionflow.models import Role
from resolutionflow.people import person_json
from resolutionflow.ratelimit import limit_per_user

MEMBERS = (Role.TECHNICIAN, Role.ENGINEER, Role.ADMIN)


def flowpilot_api(*methods: str):
    """``api_view`` for FlowPilot: every member of an account; a read-only session is a
    403 ``read_only`` with the reason."""
    return api_view(methods=methods, roles=MEMBERS)


def _check_can_write(session: Session, user) -> None:
    try:
        actions.check_can_write(session, user)
    except actions.SessionReadOnly as denied:
        raise ApiError(403, "read_only", str(denied)) from None


def _writable_session(request: HttpRequest, session_id: int) -> Session:
    """The session if the caller may see it (else 404) and write to it (else 403)."""
    session = get_session_for_user(request.user, session_id)
    _check_can_write(session, request.user)
    return session


# ------------------------------------------------------------------------------ shapes


def session_json(session: Session) -> dict:
    return {
        "id": session.pk,
        "url": reverse("flowpilot:session", args=[session.pk]),
        "title": session.title,
        "problem": session.problem,
        "customer": session.customer,
        "device": session.device,
        "status": session.status,
        "owner": person_json(session.owner),
        "escalated_to": person_json(session.escalated_to),
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
    }


def message_json(message: Message) -> dict:
    return {
        "id": message.pk,
        "role": message.role,
        "author": person_json(message.author),
        "body": message.body,
        "engine": message.engine,
        "note": message.note,
        "created_at": message.created_at.isoformat(),
    }


def task_json(task: Task) -> dict:
    return {
        "id": task.pk,
        "position": task.position,
        "title": task.title,
        "detail": task.detail,
        "command": task.command,
        "shell": task.shell,
        "status": task.status,
        "outcome": task.outcome,
        "source": task.source,
    }


def exchange_json(exchange: actions.Exchange) -> dict:
    return {
        "reply": message_json(exchange.reply),
        "steps": [
            {
                "title": lane_step.task.title,
                "detail": lane_step.task.detail,
                "command": lane_step.task.command,
                "shell": lane_step.task.shell,
                "task": lane_step.task.pk,
                "added": lane_step.added,
            }
            for lane_step in exchange.steps
        ],
    }


# ----------------------------------------------------------------------------- sessions


@flowpilot_api("GET")
def sessions(request: HttpRequest) -> JsonResponse:
    """My sessions, most recently active first, 25 a page."""
    page = sessions_page(request.user, request.GET.get("page"))
    return JsonResponse(
        {
            "sessions": [session_json(session) for session in page.object_list],
            "page": page.number,
            "pages": page.paginator.num_pages,
            "count": page.paginator.count,
        }
    )


@flowpilot_api("POST")
@limit_per_user("sessions")
def start_session(request: HttpRequest) -> JsonResponse:
    """Open a session; FlowPilot's first answer and its steps come with it."""
    form = valid_form(SessionForm, request)
    session = actions.start_session(user=request.user, **form.cleaned_data)
    exchange = actions.answer(session=session)
    return JsonResponse(
        {"session": session.pk, **session_json(session), **exchange_json(exchange)}, status=201
    )


@flowpilot_api("GET")
def session_detail(request: HttpRequest, session_id: int) -> JsonResponse:
    session = get_session_for_user(request.user, session_id)
    return JsonResponse(
        {
            "session": session_json(session),
            "messages": [message_json(message) for message in session_messages(session)],
            "tasks": [task_json(task) for task in session_tasks(session)],
            "can_write": can_write(session, request.user),
        }
    )


@flowpilot_api("POST")
@limit_per_user("messages")
def post_message(request: HttpRequest, session_id: int) -> JsonResponse:
    """Send a message: it is stored before FlowPilot answers."""
    session = _writable_session(request, session_id)
    form = valid_form(MessageForm, request)
    exchange = actions.post_message(
        session=session, user=request.user, body=form.cleaned_data["body"]
    )
    return JsonResponse(
        {"session": session.pk, "message": message_json(exchange.message)}
        | exchange_json(exchange),
        status=201,
    )


@flowpilot_api("POST")
def resolve_session(request: HttpRequest, session_id: int) -> JsonResponse:
    session = _writable_session(request, session_id)
    form = valid_form(ResolveSessionForm, request)
    try:
        actions.resolve_session(session=session, user=request.user, note=form.cleaned_data["note"])
    except actions.NotResolvable as refusal:
        raise ApiError(409, "not_resolvable", str(refusal), status=session.status) from None
    return JsonResponse({"status": "resolved", "session": session_json(session)})


# -------------------------------------------------------------------------------- tasks


@flowpilot_api("GET", "POST")
def tasks(request: HttpRequest, session_id: int) -> JsonResponse:
    """GET: the lane in order. POST: add a step by hand."""
    session = get_session_for_user(request.user, session_id)
    if request.method == "GET":
        return JsonResponse(
            {"session": session.pk, "tasks": [task_json(task) for task in session_tasks(session)]}
        )
    _check_can_write(session, request.user)
    form = valid_form(TaskForm, request)
    task = actions.add_task(session=session, user=request.user, **form.cleaned_data)
    return JsonResponse({"session": session.pk, "task": task_json(task)}, status=201)


@flowpilot_api("POST")
def update_task(request: HttpRequest, session_id: int, task_id: int) -> JsonResponse:
    session = get_session_for_user(request.user, session_id)
    task = task_in_session(session, task_id)
    _check_can_write(session, request.user)
    form = valid_form(TaskUpdateForm, request)
    actions.update_task(
        task=task,
        user=request.user,
        status=form.cleaned_data["status"],
        outcome=form.cleaned_outcome(),
    )
    return JsonResponse({"session": session.pk, "task": task_json(task)})


@flowpilot_api("POST")
def move_task(request: HttpRequest, session_id: int, task_id: int) -> JsonResponse:
    session = get_session_for_user(request.user, session_id)
    task = task_in_session(session, task_id)
    _check_can_write(session, request.user)
    form = valid_form(MoveTaskForm, request)
    actions.move_task(task=task, user=request.user, direction=form.cleaned_data["direction"])
    return JsonResponse({"session": session.pk, "task": task_json(task)})
