"""The phases of a milestone, in order. Run with: pytest acceptance --milestone ID.

The phase tests ship with the plugin (harness.plugin.phase_tests) so that any project can run them;
this module is where this repository collects them.
"""

from harness.plugin.phase_tests import *  # noqa: F403
