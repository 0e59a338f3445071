;; A small typed domain for the engine's extensions: either-types, constants, negative preconditions,
;; equality, action costs, and the generic wording of an unknown domain.
(define (domain lights)
  (:requirements :strips :typing :negative-preconditions :equality :action-costs)
  (:types lamp switch - device)
  (:constants master - switch)
  (:predicates (lit ?l - lamp) (wired ?s - switch ?l - lamp) (powered) (broken ?d - device))
  (:functions (total-cost) - number)

  (:action power-on
    :parameters ()
    :precondition (not (powered))
    :effect (and (powered) (increase (total-cost) 1)))

  (:action flip
    :parameters (?s - switch ?l - lamp)
    :precondition (and (powered) (wired ?s ?l) (not (lit ?l)) (not (broken ?s)))
    :effect (and (lit ?l) (increase (total-cost) 1)))

  (:action swap
    :parameters (?a - (either lamp switch) ?b - (either lamp switch))
    :precondition (and (broken ?a) (not (= ?a ?b)) (not (broken ?b)))
    :effect (and (not (broken ?a)) (increase (total-cost) 1))))
