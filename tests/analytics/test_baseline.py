"""The manual baseline: admins record, list, edit and delete stopwatch timings."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics import actions
from analytics.models import BaselineMeasurement
from resolutionflow.models import Role, User

LIST = reverse("analytics:baseline")
CREATE = reverse("analytics:baseline_create")
# A recent day, as a real timing would be (the form refuses dates over two years old).
MEASURED_ON = timezone.localdate() - timedelta(days=60)


def edit_url(timing) -> str:
    return reverse("analytics:baseline_edit", args=[timing.pk])


def delete_url(timing) -> str:
    return reverse("analytics:baseline_delete", args=[timing.pk])


def valid(user, **overrides) -> dict:
    return {
        "minutes": "14.5",
        "measured_on": MEASURED_ON.isoformat(),
        "timed_by": str(user.pk),
        "note": "VPN drop: asked Tess what she tried over Teams",
        **overrides,
    }


@pytest.fixture
def globex_admin(gwen):
    return User.objects.create(username="gina", account=gwen.account, role=Role.ADMIN)


@pytest.fixture
def globex_timing(globex_admin):
    return actions.record_baseline(
        account=globex_admin.account,
        minutes=Decimal("9"),
        measured_on=date(2026, 3, 1),
        timed_by=globex_admin,
    )


class TestRecord:
    def test_admin_records_a_timing(self, client_for, ada, sam):
        response = client_for(ada).post(CREATE, valid(sam))
        assert response.status_code == 303
        assert response["Location"] == LIST
        timing = BaselineMeasurement.objects.get()
        assert timing.account_id == ada.account_id
        assert timing.minutes == Decimal("14.50")
        assert timing.measured_on == MEASURED_ON
        assert timing.timed_by == sam
        assert timing.note.startswith("VPN drop")

    @pytest.mark.parametrize(
        ("minutes", "message"),
        [
            ("-5", "Minutes must be more than zero."),
            ("0", "Minutes must be more than zero."),
            ("0.05", "Enter at least 0.1 minutes."),
            ("240.01", "more than 240"),
            ("100000", "more than 240"),
            ("ten", "Enter a number."),
        ],
    )
    def test_negative_or_absurd_minutes_are_refused_and_the_typed_values_stay(
        self, client_for, ada, minutes, message
    ):
        response = client_for(ada).post(CREATE, valid(ada, minutes=minutes))
        assert response.status_code == 400
        html = response.content.decode()
        assert message in html
        assert f'value="{minutes}"' in html
        assert f'value="{MEASURED_ON.isoformat()}"' in html
        assert "asked Tess what she tried" in html
        assert not BaselineMeasurement.objects.exists()

    @pytest.mark.parametrize(("typed", "stored"), [("1,5", "1.50"), (" 4.25 ", "4.25")])
    def test_a_decimal_comma_is_a_decimal_point(self, client_for, ada, typed, stored):
        response = client_for(ada).post(CREATE, valid(ada, minutes=typed))
        assert response.status_code == 303
        assert BaselineMeasurement.objects.get().minutes == Decimal(stored)

    def test_minutes_are_a_text_box_so_the_browser_cannot_misread_a_comma(self, client_for, ada):
        html = client_for(ada).get(LIST).content.decode()
        assert 'type="text" name="minutes"' in html
        assert 'inputmode="decimal"' in html

    def test_thousands_separators_are_refused_not_guessed(self, client_for, ada):
        response = client_for(ada).post(CREATE, valid(ada, minutes="1,234.5"))
        assert response.status_code == 400
        assert "one number, like 4.5 or 4,5" in response.content.decode()

    def test_a_timing_over_two_years_old_is_refused(self, client_for, ada):
        long_ago = (timezone.localdate() - timedelta(days=731)).isoformat()
        response = client_for(ada).post(CREATE, valid(ada, measured_on=long_ago))
        assert response.status_code == 400
        assert "more than two years ago" in response.content.decode()
        assert not BaselineMeasurement.objects.exists()

    def test_240_minutes_is_the_most(self, client_for, ada):
        assert client_for(ada).post(CREATE, valid(ada, minutes="240")).status_code == 303

    def test_a_future_date_is_refused(self, client_for, ada):
        tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
        response = client_for(ada).post(CREATE, valid(ada, measured_on=tomorrow))
        assert response.status_code == 400
        assert "cannot be in the future" in response.content.decode()

    def test_the_timer_must_be_of_the_same_account(self, client_for, ada, gwen):
        response = client_for(ada).post(CREATE, valid(gwen))
        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
        assert not BaselineMeasurement.objects.exists()

    def test_get_is_405(self, client_for, ada):
        assert client_for(ada).get(CREATE).status_code == 405

    @pytest.mark.parametrize("persona", ["tess", "sam"])
    def test_only_admins(self, client_for, personas, persona):
        user = personas[persona]
        assert client_for(user).post(CREATE, valid(user)).status_code == 403
        assert client_for(user).get(LIST).status_code == 403
        assert not BaselineMeasurement.objects.exists()


class TestList:
    def test_lists_the_accounts_timings_only(self, client_for, ada, globex_timing):
        actions.record_baseline(
            account=ada.account,
            minutes=Decimal("12.25"),
            measured_on=date(2026, 3, 2),
            timed_by=ada,
            note="Printer spooler",
        )
        html = client_for(ada).get(LIST).content.decode()
        assert "Printer spooler" in html
        assert "12.25" in html
        assert "1 of 5 needed" in html
        assert edit_url(globex_timing) not in html

    def test_query_count_is_fixed(self, client_for, ada, django_assert_num_queries):
        for day in range(1, 8):
            actions.record_baseline(
                account=ada.account,
                minutes=Decimal(day),
                measured_on=date(2026, 3, day),
                timed_by=ada,
            )
        client = client_for(ada)
        # Session, user, the median, account (top bar), the timer choices, the timings with
        # their timers, the bell stream's position.
        with django_assert_num_queries(7):
            client.get(LIST)


class TestEdit:
    def test_admin_corrects_a_timing(self, client_for, ada, sky):
        timing = actions.record_baseline(
            account=ada.account, minutes=Decimal("30"), measured_on=date(2026, 3, 2), timed_by=ada
        )
        client = client_for(ada)
        html = client.get(edit_url(timing)).content.decode()
        assert 'value="30.00"' in html
        response = client.post(edit_url(timing), valid(sky, minutes="13"))
        assert response.status_code == 303
        timing.refresh_from_db()
        assert (timing.minutes, timing.timed_by, timing.measured_on) == (
            Decimal("13.00"),
            sky,
            MEASURED_ON,
        )

    def test_absurd_correction_is_refused_and_kept_in_the_form(self, client_for, ada):
        timing = actions.record_baseline(
            account=ada.account, minutes=Decimal("30"), measured_on=date(2026, 3, 2), timed_by=ada
        )
        response = client_for(ada).post(edit_url(timing), valid(ada, minutes="-3"))
        assert response.status_code == 400
        assert 'value="-3"' in response.content.decode()
        timing.refresh_from_db()
        assert timing.minutes == Decimal("30.00")

    def test_another_accounts_timing_is_404(self, client_for, ada, globex_timing):
        client = client_for(ada)
        assert client.get(edit_url(globex_timing)).status_code == 404
        assert client.post(edit_url(globex_timing), valid(ada)).status_code == 404
        globex_timing.refresh_from_db()
        assert globex_timing.minutes == Decimal("9.00")

    def test_put_is_405(self, client_for, ada, globex_timing):
        assert client_for(ada).put(edit_url(globex_timing)).status_code == 405

    def test_engineer_is_refused(self, client_for, sam, ada):
        timing = actions.record_baseline(
            account=ada.account, minutes=Decimal("30"), measured_on=date(2026, 3, 2), timed_by=ada
        )
        assert client_for(sam).post(edit_url(timing), valid(sam)).status_code == 403


class TestDelete:
    def test_admin_deletes_a_timing(self, client_for, ada):
        timing = actions.record_baseline(
            account=ada.account, minutes=Decimal("30"), measured_on=date(2026, 3, 2), timed_by=ada
        )
        response = client_for(ada).post(delete_url(timing))
        assert response.status_code == 303
        assert not BaselineMeasurement.objects.exists()

    def test_another_accounts_timing_is_404_and_stays(self, client_for, ada, globex_timing):
        assert client_for(ada).post(delete_url(globex_timing)).status_code == 404
        assert BaselineMeasurement.objects.filter(pk=globex_timing.pk).exists()

    def test_get_is_405(self, client_for, ada, globex_timing):
        assert client_for(ada).get(delete_url(globex_timing)).status_code == 405

    def test_engineer_is_refused(self, client_for, sam, ada):
        timing = actions.record_baseline(
            account=ada.account, minutes=Decimal("30"), measured_on=date(2026, 3, 2), timed_by=ada
        )
        assert client_for(sam).post(delete_url(timing)).status_code == 403
        assert BaselineMeasurement.objects.filter(pk=timing.pk).exists()


class TestActions:
    @pytest.mark.parametrize("minutes", ["0", "-1", "240.01"])
    def test_record_refuses_out_of_range_minutes(self, ada, minutes):
        with pytest.raises(ValueError, match="baseline minutes"):
            actions.record_baseline(
                account=ada.account,
                minutes=Decimal(minutes),
                measured_on=date(2026, 3, 2),
                timed_by=ada,
            )

    def test_the_timer_must_belong_to_the_account(self, ada, gwen):
        with pytest.raises(ValueError, match="belong to its account"):
            actions.record_baseline(
                account=ada.account,
                minutes=Decimal("5"),
                measured_on=date(2026, 3, 2),
                timed_by=gwen,
            )
