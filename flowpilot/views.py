"""FlowPilot pages, their htmx fragments and the JSON API.

Each view: method → member of an account → access getter (404 outside what the user may
see) → may they write (403) → form (400) → one action → page, fragment or JSON.
Every mutating view answers three kinds of client:

- htmx (the page): fragments, the task lane swapped out of band;
- JSON (``Accept: application/json``): the shapes documented in docs/API.md;
- a plain form post (no JavaScript): a redirect back to the page, or the page with errors.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
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
from flowpilot.models import Message, Session, SessionStatus, Task
from flowpilot.queries import (
    SIDEBAR_LIMIT,
    can_write,
    claimed_sessions,
    get_session_for_user,
    my_sessions,
    session_messages,
    session_tasks,
)
from resolutionflow.http import BadRequestBody, request_data, see_other, wants_json
from resolutionflow.permissions import any_member_required

SESSIONS_PER_PAGE = 25

# ---------------------------------------------------------------------------- helpers


def json_errors(errors: dict, status: int = 400) -> JsonResponse:
    return JsonResponse({"errors": errors}, status=status)


def form_errors(form) -> dict[str, list[str]]:
    return {field: [str(error) for error in errs] for field, errs in form.errors.items()}


def flowpilot_view(view):
    """JSON 404s and 400s for API clients; friendly 403s for read-only sessions."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            if wants_json(request):
                return JsonResponse({"error": "not_found"}, status=404)
            raise
        except BadRequestBody as bad:
            return json_errors(bad.errors)
        except actions.SessionReadOnly as denied:
            if wants_json(request):
                return JsonResponse({"error": "read_only", "message": str(denied)}, status=403)
            if request.htmx:
                messages.error(request, str(denied))
                return HttpResponse(status=403)
            raise

    return wrapper


def session_page_context(request: HttpRequest, session: Session, **extra) -> dict:
    """Everything the chat page renders; a fixed number of queries however long the chat."""
    writable = can_write(session, request.user)
    is_owner = session.owner_id == request.user.pk
    return {
        "session": session,
        "chat_messages": list(session_messages(session)),
        "tasks": list(session_tasks(session)),
        # Read only if a template shows it: the live update (``_live_update``) never does.
        "sidebar_sessions": lambda: list(my_sessions(request.user)[:SIDEBAR_LIMIT]),
        "sidebar_claims": lambda: list(claimed_sessions(request.user)[:SIDEBAR_LIMIT]),
        "can_write": writable,
        "is_owner": is_owner,
        **extra,
    }


def lane_context(session: Session, user, **extra) -> dict:
    return {
        "session": session,
        "tasks": list(session_tasks(session)),
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


# ------------------------------------------------------------------------------- JSON


def user_json(user) -> dict | None:
    return {"id": user.pk, "name": user.name} if user else None


def session_json(session: Session) -> dict:
    return {
        "id": session.pk,
        "url": session_url(session),
        "title": session.title,
        "problem": session.problem,
        "customer": session.customer,
        "device": session.device,
        "status": session.status,
        "owner": user_json(session.owner),
        "escalated_to": user_json(session.escalated_to),
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
    }


def message_json(message: Message) -> dict:
    return {
        "id": message.pk,
        "role": message.role,
        "author": user_json(message.author),
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


# ------------------------------------------------------------------------------ pages


@require_GET
@any_member_required
def sessions(request: HttpRequest) -> HttpResponse:
    """My sessions, most recently active first, a page at a time, and the form to start one."""
    page = sessions_page(request)
    if wants_json(request):
        return JsonResponse(
            {
                "sessions": [session_json(session) for session in page.object_list],
                "page": page.number,
                "pages": page.paginator.num_pages,
                "count": page.paginator.count,
            }
        )
    return render(request, "flowpilot/sessions.html", sessions_page_context(page, values={}))


def sessions_page(request: HttpRequest) -> Page:
    """The ``?page=`` of my sessions (the first for a missing or bad number, the last past
    the end): two queries however many sessions, the count and the page."""
    page = Paginator(my_sessions(request.user), SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for session in page.object_list:
        session.owner = request.user  # no query per row
    return page


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
@flowpilot_view
def start_session(request: HttpRequest) -> HttpResponse:
    """Open a session and get FlowPilot's first answer with its steps."""
    form = SessionForm(request_data(request))
    if not form.is_valid():
        if wants_json(request):
            return json_errors(form_errors(form))
        return render(
            request,
            "flowpilot/sessions.html",
            sessions_page_context(
                sessions_page(request), errors=form_errors(form), values=form.data
            ),
            status=400,
        )
    session = actions.start_session(user=request.user, **form.cleaned_data)
    exchange = actions.answer(session=session)
    if wants_json(request):
        return JsonResponse(
            {
                "session": session.pk,
                **session_json(session),
                **exchange_json(exchange),
            },
            status=201,
        )
    return see_other(request, session_url(session))


@require_GET
@any_member_required
@flowpilot_view
def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    """The chat: history, composer and the task lane, with my sessions beside it."""
    session = get_session_for_user(request.user, session_id)
    if wants_json(request):
        return JsonResponse(
            {
                "session": session_json(session),
                "messages": [message_json(m) for m in session_messages(session)],
                "tasks": [task_json(t) for t in session_tasks(session)],
                "can_write": can_write(session, request.user),
            }
        )
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
@flowpilot_view
def post_message(request: HttpRequest, session_id: int) -> HttpResponse:
    """Send a message; the answer and the refreshed lane come back together."""
    session = get_session_for_user(request.user, session_id)
    actions.check_can_write(session, request.user)
    data = request_data(request)
    form = MessageForm(data)
    if not form.is_valid():
        if wants_json(request):
            return json_errors(form_errors(form))
        if not str(data.get("body", "")).strip():
            # An empty message does nothing (the page never sends one anyway).
            if request.htmx:
                return HttpResponse(status=204)
            return see_other(request, session_url(session))
        if request.htmx:
            response = render(
                request,
                "flowpilot/session.html#composer-errors",
                {"composer_errors": form.errors.get("body", [])},
                status=400,
            )
            response["HX-Retarget"] = "#composer-errors"
            response["HX-Reswap"] = "outerHTML"
            return response
        context = session_page_context(
            request,
            session,
            composer_errors=form.errors.get("body", []),
            composer_value=data.get("body", ""),
        )
        return render(request, "flowpilot/session.html", context, status=400)

    if _talks_to_people(request, session, data):
        note = actions.post_note(session=session, user=request.user, body=form.cleaned_data["body"])
        if request.htmx:
            return render(
                request,
                "flowpilot/exchange.html",
                lane_context(session, request.user, new_messages=[note], added_task_ids=set()),
            )
        return see_other(request, session_url(session) + "#composer")
    exchange = actions.post_message(
        session=session, user=request.user, body=form.cleaned_data["body"]
    )
    if wants_json(request):
        return JsonResponse(
            {"session": session.pk, "message": message_json(exchange.message)}
            | exchange_json(exchange),
            status=201,
        )
    if request.htmx:
        return render(
            request,
            "flowpilot/exchange.html",
            lane_context(
                session,
                request.user,
                new_messages=[exchange.message, exchange.reply],
                added_task_ids={task.pk for task in exchange.added_tasks},
            ),
        )
    return see_other(request, session_url(session) + "#composer")


def _talks_to_people(request: HttpRequest, session: Session, data) -> bool:
    """Whether the page's message is for the people, not FlowPilot: the senior who holds
    an escalated session writes to the technician unless they press "Ask FlowPilot".
    API clients keep the assistant's answer (the JSON contract is unchanged)."""
    return (
        not wants_json(request)
        and session.escalated_to_id == request.user.pk
        and session.status == SessionStatus.ESCALATED
        and data.get("ask") != "flowpilot"
    )


@require_POST
@any_member_required
@flowpilot_view
def resolve_session(request: HttpRequest, session_id: int) -> HttpResponse:
    """Mark my active session resolved (it was fixed without escalating), with a note."""
    session = get_session_for_user(request.user, session_id)
    actions.check_can_write(session, request.user)
    data = request_data(request)
    form = ResolveSessionForm(data)
    if not form.is_valid():
        if wants_json(request):
            return json_errors(form_errors(form))
        context = session_page_context(
            request,
            session,
            resolve_errors=form.errors.get("note", []),
            resolve_value=data.get("note", ""),
        )
        return render(request, "flowpilot/session.html", context, status=400)
    try:
        actions.resolve_session(session=session, user=request.user, note=form.cleaned_data["note"])
    except actions.NotResolvable as refusal:
        if wants_json(request):
            return JsonResponse(
                {"error": "not_resolvable", "status": session.status, "message": str(refusal)},
                status=409,
            )
        messages.warning(request, str(refusal))
        return see_other(request, session_url(session))
    if wants_json(request):
        return JsonResponse({"status": "resolved", "session": session_json(session)})
    messages.success(request, "Resolved. Well done: no escalation needed.")
    return see_other(request, session_url(session))


@require_http_methods(["GET", "POST"])
@any_member_required
@flowpilot_view
def tasks(request: HttpRequest, session_id: int) -> HttpResponse:
    """GET: the lane (fragment or JSON). POST: add a step by hand."""
    session = get_session_for_user(request.user, session_id)
    if request.method == "GET":
        if wants_json(request):
            return JsonResponse(
                {"session": session.pk, "tasks": [task_json(t) for t in session_tasks(session)]}
            )
        return render_lane(request, session)

    actions.check_can_write(session, request.user)
    data = request_data(request)
    form = TaskForm(data)
    if not form.is_valid():
        if wants_json(request):
            return json_errors(form_errors(form))
        return _lane_form_refused(request, session, task_errors=form.errors, task_values=data)
    task = actions.add_task(session=session, user=request.user, **form.cleaned_data)
    if wants_json(request):
        return JsonResponse({"session": session.pk, "task": task_json(task)}, status=201)
    if request.htmx:
        return render_lane(request, session, added_task_ids={task.pk})
    return see_other(request, session_url(session) + f"#task-{task.pk}")


def _task_in_session(session: Session, task_id: int) -> Task:
    try:
        # Fetched through the session: the task's .session is this very object.
        return session.tasks.get(pk=task_id)
    except Task.DoesNotExist:
        raise Http404("No such task.") from None


def _lane_form_refused(request: HttpRequest, session: Session, **errors) -> HttpResponse:
    """A lane form with errors, shown again with what was typed: the lane, or the whole page."""
    if request.htmx:
        return render_lane(request, session, status=400, **errors)
    context = session_page_context(request, session, **errors)
    return render(request, "flowpilot/session.html", context, status=400)


@require_POST
@any_member_required
@flowpilot_view
def update_task(request: HttpRequest, session_id: int, task_id: int) -> HttpResponse:
    """Change a step's status and outcome note."""
    session = get_session_for_user(request.user, session_id)
    task = _task_in_session(session, task_id)
    actions.check_can_write(session, request.user)
    data = request_data(request)
    form = TaskUpdateForm(data)
    if not form.is_valid():
        if wants_json(request):
            return json_errors(form_errors(form))
        return _lane_form_refused(
            request,
            session,
            update_errors={task.pk: form.errors},
            update_values={task.pk: data},
        )
    actions.update_task(
        task=task,
        user=request.user,
        status=form.cleaned_data["status"],
        outcome=form.cleaned_outcome(),
    )
    if wants_json(request):
        return JsonResponse({"session": session.pk, "task": task_json(task)})
    if request.htmx:
        return render_lane(request, session)
    return see_other(request, session_url(session) + f"#task-{task.pk}")


@require_POST
@any_member_required
@flowpilot_view
def move_task(request: HttpRequest, session_id: int, task_id: int) -> HttpResponse:
    """Move a step one place up or down the lane."""
    session = get_session_for_user(request.user, session_id)
    task = _task_in_session(session, task_id)
    actions.check_can_write(session, request.user)
    data = request_data(request)
    form = MoveTaskForm(data)
    if not form.is_valid():
        if wants_json(request):
            return json_errors(form_errors(form))
        return HttpResponse("Move a step up or down.", status=400, content_type="text/plain")
    actions.move_task(task=task, user=request.user, direction=form.cleaned_data["direction"])
    if wants_json(request):
        return JsonResponse({"session": session.pk, "task": task_json(task)})
    if request.htmx:
        return render_lane(request, session)
    return see_other(request, session_url(session) + f"#task-{task.pk}")
