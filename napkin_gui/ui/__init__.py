"""The Qt desktop app: one PlanController, editors that set plans, views that show Estimates."""
