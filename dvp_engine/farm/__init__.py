"""Render farms: the ``dvp reenact`` job as Open Job Description templates and OpenCue outlines.

:mod:`.job` describes the steps once; :mod:`.openjd` and :mod:`.opencue` write them for each farm manager.
"""
