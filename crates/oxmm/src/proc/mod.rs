//! /proc renderers
