import pytest

from edgecl_train.metrics import Metrics


def test_metrics_from_a_hand_made_matrix():
    # 3 tasks. A_t: row 0 -> 80; row 1 -> (60 + 90)/2 = 75; row 2 -> (40 + 70 + 100)/3 = 70.
    # average incremental accuracy = (80 + 75 + 70)/3 = 75.
    # forgetting: task 0: max(80, 60) - 40 = 40; task 1: max(90) - 70 = 20 -> mean 30.
    m = Metrics(accuracy_matrix=[[80, 0, 0], [60, 90, 0], [40, 70, 100]], task_classes=[[0], [1], [2]],
                seen_accuracy=[80, 75, 70], task_il_accuracy_matrix=[[80, 50, 50], [70, 95, 50], [60, 90, 100]])
    assert m.average_accuracy == pytest.approx([80, 75, 70])
    assert m.final_average_accuracy == pytest.approx(70)
    assert m.average_incremental_accuracy == pytest.approx(75)
    assert m.forgetting == pytest.approx(30)
    assert m.task_il_final_average_accuracy == pytest.approx(250 / 3)
    d = m.to_json()
    assert d["final_average_accuracy"] == pytest.approx(70) and d["forgetting"] == pytest.approx(30)


def test_joint_row_counts_all_tasks_and_has_no_forgetting():
    m = Metrics(accuracy_matrix=[[50, 70]], task_classes=[[0], [1]], seen_accuracy=[60], seen_tasks=[2])
    assert m.final_average_accuracy == pytest.approx(60) and m.forgetting is None
