"""Structured pruning: coupled channel groups from the graph, one-shot pruning and `shrink`."""

from edgeprune.structured.criteria import CRITERIA, channel_scores
from edgeprune.structured.graph import ChannelGraph, ChannelGroup, Unprunable
from edgeprune.structured.masked_norm import ChannelMaskedLayerNormalization
from edgeprune.structured.oneshot import channel_masks, prune_channels
from edgeprune.structured.report import ShrinkReport, shrink_report
from edgeprune.structured.selection import select_channels
from edgeprune.structured.shrink import shrink, zero_channels
